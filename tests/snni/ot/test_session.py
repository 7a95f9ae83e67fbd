"""IKNP-based OT flavours over both transports: correctness, and what each side sees."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from testkit.snni import CHI2_LIMIT, chi_square_uniform_bytes, recording_pair

from secfepas_sdk.errors import SnniError
from secfepas_sdk.snni.channel import Channel, run_pair
from secfepas_sdk.snni.ot import OtSession
from secfepas_sdk.snni.ot import session as session_mod
from secfepas_sdk.snni.ot import words as words_mod
from secfepas_sdk.snni.ot.words import words_decode, words_payload
from secfepas_sdk.snni.party import Party

N = 5000  # not a multiple of 8 or of the chunk size, on purpose


def pair(run_parties: Callable[..., tuple[Any, Any]], client: Any, server: Any) -> tuple[Any, Any]:
    def wrap(party: Party, fn: Any) -> Callable[[Channel], Any]:
        def run(ch: Channel) -> Any:
            ot = OtSession(party)
            ot.setup(ch)
            return fn(ot, ch)

        return run

    return run_parties(wrap(Party.CLIENT, client), wrap(Party.SERVER, server))


def test_all_flavours_both_directions(run_parties: Callable[..., tuple[Any, Any]]) -> None:
    rng = np.random.default_rng(5)
    c = rng.integers(0, 2, N).astype(np.uint8)
    m0 = rng.integers(0, 1 << 37, N, dtype=np.uint64)
    m1 = rng.integers(0, 1 << 37, N, dtype=np.uint64)
    delta = rng.integers(0, 1 << 20, N, dtype=np.uint64)
    c16 = rng.integers(0, 16, N).astype(np.uint64)
    msgs = rng.integers(0, 4, (N, 16), dtype=np.uint64)
    c4 = rng.integers(0, 4, N).astype(np.uint64)
    msgs4 = rng.integers(0, 1 << 30, (N, 4), dtype=np.uint64)

    def client(ot: OtSession, ch: Channel) -> Any:
        k = ot.rot_recv(ch, c, 64)
        chosen = ot.chosen_recv(ch, c, 37)
        corr = ot.cot_recv(ch, c, 20)
        one16 = ot.one_of_n_recv(ch, c16, 4, 2)
        one4 = ot.one_of_n_recv(ch, c4, 2, 30)
        ot.chosen_send(ch, m0, m1, 37)  # and the other direction
        return k, chosen, corr, one16, one4

    def server(ot: OtSession, ch: Channel) -> Any:
        k0, k1 = ot.rot_send(ch, N, 64)
        ot.chosen_send(ch, m0, m1, 37)
        x = ot.cot_send(ch, delta, 20)
        ot.one_of_n_send(ch, msgs, 4, 2)
        ot.one_of_n_send(ch, msgs4, 2, 30)
        back = ot.chosen_recv(ch, c, 37)
        return k0, k1, x, back

    (k, chosen, corr, one16, one4), (k0, k1, x, back) = pair(run_parties, client, server)
    np.testing.assert_array_equal(k, np.where(c == 1, k1, k0))
    assert (k0 != k1).mean() > 0.99
    np.testing.assert_array_equal(chosen, np.where(c == 1, m1, m0))
    np.testing.assert_array_equal(back, np.where(c == 1, m1, m0))
    np.testing.assert_array_equal(corr, (x + c * delta) & np.uint64((1 << 20) - 1))
    np.testing.assert_array_equal(one16, msgs[np.arange(N), c16.astype(int)])
    np.testing.assert_array_equal(one4, msgs4[np.arange(N), c4.astype(int)])


@pytest.mark.parametrize("choice", [0, 1])
def test_sender_view_is_uniform_whatever_the_choices(choice: int) -> None:
    """All-0 or all-1 choices: the u matrix the sender sees is uniform either way."""
    cl, sv = recording_pair()
    choices = np.full(1 << 14, choice, dtype=np.uint8)
    messages = (np.zeros(1 << 14, dtype=np.uint64), np.full(1 << 14, 255, dtype=np.uint64))

    def client(ch: Channel) -> np.ndarray:
        ot = OtSession(Party.CLIENT)
        ot.setup(ch)
        return ot.chosen_recv(ch, choices, 8)

    def server(ch: Channel) -> None:
        ot = OtSession(Party.SERVER)
        ot.setup(ch)
        ot.chosen_send(ch, messages[0], messages[1], 8)

    import threading

    out: list[Any] = []
    t = threading.Thread(target=lambda: out.append(client(cl)))
    t.start()
    server(sv)
    t.join(60)
    np.testing.assert_array_equal(out[0], messages[choice])
    sender_view = b"".join(sv.view[2:])  # after the 2 base-OT messages: the u matrix
    assert chi_square_uniform_bytes(sender_view) < CHI2_LIMIT
    # The receiver's view of the masked pair: both columns uniform, including the
    # one it did not choose (constant 0 and 255 messages underneath).
    receiver_view = np.frombuffer(cl.view[-1], dtype=np.uint8).reshape(-1, 2)
    for col in range(2):
        assert chi_square_uniform_bytes(receiver_view[:, col].tobytes()) < CHI2_LIMIT


def test_one_of_n_rejects_bad_sizes() -> None:
    with pytest.raises(SnniError):
        words_payload(
            (np.zeros(4, np.uint64), np.zeros(4, np.uint64)), np.zeros(1, np.uint64), 4, 5
        )
    with pytest.raises(SnniError):
        words_decode(np.zeros(4, np.uint64), b"\x00", np.zeros(1, np.uint64), 4, 2)
    ot = OtSession(Party.CLIENT)
    with pytest.raises(SnniError, match="before setup"):
        run_pair(lambda ch: ot.rot_recv(ch, np.zeros(3, np.uint8), 8), lambda ch: None)


def test_hash_tweaks_are_unique_to_each_session(monkeypatch: pytest.MonkeyPatch) -> None:
    """Both parties derive the same session value from the fresh base-OT points, so
    their tweak domains pair up; a second session of the same parties gets others."""
    seen: list[tuple[bool, tuple[int, int]]] = []
    build = session_mod.extension_mod.build

    def recording_build(*args: Any, **kwargs: Any) -> Any:
        seen.append((kwargs["client"], kwargs["domains"]))
        return build(*args, **kwargs)

    monkeypatch.setattr(session_mod.extension_mod, "build", recording_build)

    def setup(party: Party) -> Callable[[Channel], None]:
        return lambda ch: OtSession(party).setup(ch)

    for _ in range(2):
        run_pair(setup(Party.CLIENT), setup(Party.SERVER))
    assert len(seen) == 4
    sessions = []
    for first, second in (seen[:2], seen[2:]):
        client = first[1] if first[0] else second[1]
        server = second[1] if first[0] else first[1]
        assert client == (server[1], server[0])  # mine and peer's swap between parties
        assert client[0] ^ client[1] == 1  # the two directions stay apart
        assert client[0] >= 1 << 31  # the session value reached the high bits
        sessions.append(client)
    assert sessions[0] != sessions[1]
    assert session_mod.session_tag(b"a", b"b") == session_mod.session_tag(b"b", b"a")


@settings(max_examples=25, deadline=None)
@given(
    kind=st.sampled_from([(1, 8), (1, 4), (2, 2), (3, 1), (3, 2), (4, 4), (5, 2), (2, 16)]),
    n=st.integers(0, 300),
    seed=st.integers(0, 2**32 - 1),
)
def test_words_payload_kernel_matches_numpy(kind: tuple[int, int], n: int, seed: int) -> None:
    """The one-pass numba spread gives the table lookups' payload, and the receiver
    decodes its chosen message from it."""
    log_n, width = kind
    rng = np.random.default_rng(seed)
    keys = tuple(rng.integers(0, 1 << 63, n * log_n, dtype=np.uint64) for _ in "ab")
    words = rng.integers(0, 1 << 63, n, dtype=np.uint64) & np.uint64((1 << (width << log_n)) - 1)
    got = words_payload((keys[0], keys[1]), words, log_n, width)
    want = words_mod._spread_numpy((keys[0], keys[1]), words, log_n, words_mod._lut(log_n, width))
    per = (width << log_n) // 8
    assert got == want.view(np.uint8).reshape(n, 8)[:, :per].tobytes()
    if n:
        choice = rng.integers(0, 1 << log_n, n).astype(np.uint64)
        bits = ((choice[:, None] >> np.arange(log_n, dtype=np.uint64)) & np.uint64(1)).astype(bool)
        key = np.where(bits.reshape(-1), keys[1], keys[0])
        mask = np.uint64((1 << width) - 1)
        msg = (words >> (choice * np.uint64(width))) & mask
        np.testing.assert_array_equal(words_decode(key, got, choice, log_n, width), msg)


def test_words_kernels_are_in_use_and_decode_like_numpy() -> None:
    """With numba the packed 1-of-N passes pass their checks; the decode gives the
    numpy form's messages on a larger input too."""
    pytest.importorskip("numba")
    kernel = words_mod._decode_kernel()
    assert kernel is not None and words_mod._spread_kernel() is not None
    rng = np.random.default_rng(5)
    n, log_n, width = 5000, 3, 2
    key = rng.integers(0, 1 << 63, n * log_n, dtype=np.uint64)
    raw = rng.bytes(n * 2)
    c = rng.integers(0, 8, n).astype(np.uint64)
    np.testing.assert_array_equal(
        words_mod._words_decode(key, raw, c, log_n, width, kernel),
        words_mod._words_decode(key, raw, c, log_n, width, None),
    )
