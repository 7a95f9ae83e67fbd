"""Naor-Pinkas base OT: correctness and rejection of bad group elements."""

from __future__ import annotations

import secrets

import numpy as np
import pytest

from secfepas_sdk.errors import SnniError
from secfepas_sdk.snni.channel import Channel, memory_pair, run_pair
from secfepas_sdk.snni.ot import base


def test_receiver_gets_the_chosen_key() -> None:
    choices = np.frombuffer(secrets.token_bytes(128), dtype=np.uint8) & np.uint8(1)

    def sender(ch: Channel) -> tuple[np.ndarray, np.ndarray]:
        return base.send_finish(ch, base.send_first(ch), 128)

    (k0, k1), got = run_pair(sender, lambda ch: base.receive(ch, choices))
    np.testing.assert_array_equal(got, np.where(choices[:, None] == 1, k1, k0))
    assert not (k0 == k1).all(axis=1).any()
    assert len({bytes(k) for k in k0} | {bytes(k) for k in k1}) == 256


@pytest.mark.parametrize(
    "bad_point",
    [
        bytes(32),  # not a valid encoding of a prime-order point
        bytes.fromhex("01" + "00" * 31),  # the identity
        bytes.fromhex("ec" + "ff" * 30 + "7f"),  # non-canonical
    ],
)
def test_receiver_rejects_invalid_points(bad_point: bytes) -> None:
    a, b = memory_pair(timeout_s=5)
    a.send(bad_point + bad_point)
    with pytest.raises(SnniError, match="invalid group element"):
        base.receive(b, np.zeros(4, dtype=np.uint8))


def test_sender_rejects_invalid_reply() -> None:
    a, b = memory_pair(timeout_s=5)
    state = base.send_first(a)
    b.recv()
    b.send(bytes(32) * 4)
    with pytest.raises(SnniError):
        base.send_finish(a, state, 4)


def test_count_is_bounded() -> None:
    a, _ = memory_pair(timeout_s=5)
    with pytest.raises(SnniError):
        base.send_finish(a, (b"", b"", b""), 0)
