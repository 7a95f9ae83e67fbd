"""Ferret's outputs and messages are pinned: with fixed randomness the COTs, the random
OTs and every byte each party receives hash to the digest the whole-buffer version
(d1c0e5c, before the group-by-group iterations) gave, so peers of either version agree.

The randomness (``secrets.token_bytes``, per party thread) and the SoftSpokenOT base
COTs are replaced by fixed streams here only; the code under test is unchanged."""

from __future__ import annotations

import hashlib
import secrets
import threading
from typing import Any, cast

import numpy as np
import pytest
from testkit.snni import recording_pair

from secfepas_sdk.snni.channel import Channel
from secfepas_sdk.snni.ot import lpn
from secfepas_sdk.snni.ot.ferret import FerretReceiver, FerretSender

P = lpn.SETUP  # the main set too, so that the run crosses iterations fast
COUNT = P.n - P.reserve + 5003  # the first main iteration, into the second
CHOSEN = 600_001  # chosen-choice random OTs, across the second boundary
PINNED = "499790f62a5ddbea12c3d65d1cb792e5cdc474a34cee1c2c731087836c8d60d9"


def _stream(tag: str, nbytes: int) -> bytes:
    return hashlib.shake_256(tag.encode()).digest(nbytes)


class _Draws:
    """Deterministic token_bytes, one stream per party thread."""

    def __init__(self) -> None:
        self.calls: dict[str, int] = {}

    def __call__(self, nbytes: int | None = None) -> bytes:
        name = threading.current_thread().name
        i = self.calls[name] = self.calls.get(name, 0) + 1
        return _stream(f"{name}/{i}", 32 if nbytes is None else nbytes)


class _BaseSender:
    def __init__(self, q: np.ndarray) -> None:
        self.q = q

    def extend(self, channel: Channel, count: int) -> np.ndarray:
        return self.q[:count].copy()


class _BaseReceiver:
    def __init__(self, q: np.ndarray, delta: np.ndarray) -> None:
        self.q, self.delta = q, delta

    def extend(self, channel: Channel, bits: np.ndarray) -> np.ndarray:
        out: np.ndarray = self.q[: bits.size] ^ ((bits * np.uint8(0xFF))[:, None] & self.delta)
        return out


def test_outputs_and_messages_match_the_pinned_digest(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(secrets, "token_bytes", _Draws())
    s_bits = np.frombuffer(_stream("delta", 128), dtype=np.uint8) & np.uint8(1)
    delta = np.packbits(s_bits, bitorder="little").reshape(1, 16)
    q0 = np.frombuffer(_stream("base", 16 * P.reserve), dtype=np.uint8).reshape(-1, 16)
    choices = np.frombuffer(_stream("choices", CHOSEN), dtype=np.uint8) & np.uint8(1)
    cl, sv = recording_pair()
    out: dict[str, Any] = {}

    def receiver_party() -> None:
        r = FerretReceiver(cast(Any, _BaseReceiver(q0, delta)), domain=77, main=P)
        rows = r.bootstrap_rows(cl)
        r.bootstrap_finish(rows, r.bootstrap_recv(cl))
        out["x"], out["t"] = r.extend(cl, COUNT)
        out["k"] = r.random_ot(cl, choices, 64)
        out["xr"], out["kr"] = r.random_choice_ot(cl, 1000, 40)

    def sender_party() -> None:
        s = FerretSender(cast(Any, _BaseSender(q0)), s_bits, domain=77, main=P)
        s.bootstrap_send(sv, s.bootstrap_compute(s.bootstrap_rows(sv)))
        out["q"] = s.extend(sv, COUNT)
        out["k0"], out["k1"] = s.random_ot(sv, CHOSEN, 64)
        out["r0"], out["r1"] = s.random_choice_ot(sv, 1000, 40)

    threads = [
        threading.Thread(target=receiver_party, name="receiver"),
        threading.Thread(target=sender_party, name="sender"),
    ]
    for th in threads:
        th.start()
    for th in threads:
        th.join(120)
    assert not any(th.is_alive() for th in threads)
    # The correlation, so that a pinned digest is also a right one.
    x, t, q = out["x"], out["t"], out["q"]
    np.testing.assert_array_equal(t, q ^ ((x * np.uint8(0xFF))[:, None] & delta))
    np.testing.assert_array_equal(out["k"], np.where(choices == 1, out["k1"], out["k0"]))
    np.testing.assert_array_equal(out["kr"], np.where(out["xr"] == 1, out["r1"], out["r0"]))
    digest = hashlib.sha256()
    for key in ("x", "t", "q", "k", "k0", "k1", "xr", "kr", "r0", "r1"):
        digest.update(np.ascontiguousarray(out[key]).tobytes())
    for view in (cl.view, sv.view):
        digest.update(len(view).to_bytes(8, "little"))
        for message in view:
            digest.update(len(message).to_bytes(8, "little") + message)
    assert digest.hexdigest() == PINNED
