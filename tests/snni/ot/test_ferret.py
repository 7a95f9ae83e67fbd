"""Ferret silent OT: the COT correlation on every output, uniformity, and its parts
(GGM punctured trees, LPN encoding, parameter sets)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from hypothesis import given, settings
from hypothesis import strategies as st
from testkit.snni import CHI2_LIMIT, chi_square_uniform_bytes, recording_pair

from secfepas_sdk.errors import SnniError
from secfepas_sdk.snni.channel import Channel, run_pair
from secfepas_sdk.snni.ot import OtSession, ggm, lpn
from secfepas_sdk.snni.ot import extension as extension_mod
from secfepas_sdk.snni.ot.ferret import FerretReceiver, FerretSender
from secfepas_sdk.snni.party import Party

# With the small set as the main one: past the first main iteration's spare COTs.
COUNT = lpn.SETUP.n - lpn.SETUP.reserve + 5003


@pytest.fixture
def small_main(monkeypatch: pytest.MonkeyPatch) -> None:
    """Main iterations of the small LPN set, so that a test crosses iterations fast."""
    monkeypatch.setattr(extension_mod, "FERRET_MAIN", lpn.SETUP)


def _sessions(ch: Channel, party: Party) -> tuple[FerretSender, FerretReceiver]:
    ot = OtSession(party, extension="ferret")
    ot.setup(ch)
    sender, receiver = ot._need()
    assert isinstance(sender, FerretSender) and isinstance(receiver, FerretReceiver)
    return sender, receiver


def _both_ways(run_parties: Callable[..., tuple[Any, Any]], count: int, back: int) -> Any:
    def client(ch: Channel) -> Any:
        sender, receiver = _sessions(ch, Party.CLIENT)
        x, t = receiver.extend(ch, count)
        q = sender.extend(ch, back)
        return x, t, q, sender._delta

    def server(ch: Channel) -> Any:
        sender, receiver = _sessions(ch, Party.SERVER)
        q = sender.extend(ch, count)
        x, t = receiver.extend(ch, back)
        return q, sender._delta, x, t

    return run_parties(client, server)


def test_cot_correlation_on_the_main_set(run_parties: Callable[..., tuple[Any, Any]]) -> None:
    """The real 10 M-COT main iteration (run in the setup): its first outputs."""
    (x, t, q_back, delta_c), (q, delta_s, x_back, t_back) = _both_ways(run_parties, 20_000, 999)
    for bits, rows, qs, delta in ((x, t, q, delta_s), (x_back, t_back, q_back, delta_c)):
        np.testing.assert_array_equal(rows, qs ^ ((bits * np.uint8(0xFF))[:, None] & delta))
    assert chi_square_uniform_bytes(t.tobytes()) < CHI2_LIMIT


@pytest.mark.slow
def test_cot_correlation_on_every_output_of_a_main_iteration() -> None:
    """All 10 M usable COTs of the first main iteration, then into the second."""
    count = lpn.MAIN.n - lpn.MAIN.reserve + 1000
    (x, t, _, _), (q, delta, _, _) = _both_ways(run_pair, count, 8)
    for lo in range(0, count, 1 << 20):
        sl = slice(lo, lo + (1 << 20))
        np.testing.assert_array_equal(t[sl], q[sl] ^ ((x[sl] * np.uint8(0xFF))[:, None] & delta))
    assert abs(float(x.mean()) - 0.5) < 4 * 0.5 / np.sqrt(x.size)


@pytest.mark.usefixtures("small_main")
def test_cot_correlation_on_every_output(run_parties: Callable[..., tuple[Any, Any]]) -> None:
    """q = t xor x * Delta on every COT, both directions, across an iteration boundary."""
    (x, t, q_back, delta_c), (q, delta_s, x_back, t_back) = _both_ways(run_parties, COUNT, 1000)
    for bits, rows, qs, delta in ((x, t, q, delta_s), (x_back, t_back, q_back, delta_c)):
        np.testing.assert_array_equal(rows, qs ^ ((bits * np.uint8(0xFF))[:, None] & delta))
    # Uniformity: the receiver's bits are balanced; every block byte is uniform.
    assert abs(float(x.mean()) - 0.5) < 4 * 0.5 / np.sqrt(x.size)
    assert chi_square_uniform_bytes(t.tobytes()) < CHI2_LIMIT
    assert chi_square_uniform_bytes(q.tobytes()) < CHI2_LIMIT
    # No two outputs collide (a broken GGM or LPN would repeat blocks).
    assert np.unique(q.view(np.uint64).reshape(-1, 2), axis=0).shape[0] == q.shape[0]
    # Neighbouring bits are independent (a broken noise or encoding shows here).
    assert abs(float((x[1:] ^ x[:-1]).mean()) - 0.5) < 4 * 0.5 / np.sqrt(x.size)


def test_random_ot_flavours(run_parties: Callable[..., tuple[Any, Any]]) -> None:
    """Chosen-choice and random-choice random OTs, and the flavours of OtSession."""
    rng = np.random.default_rng(9)
    n = 3001
    c = rng.integers(0, 2, n).astype(np.uint8)
    m0 = rng.integers(0, 1 << 37, n, dtype=np.uint64)
    m1 = rng.integers(0, 1 << 37, n, dtype=np.uint64)

    def client(ch: Channel) -> Any:
        ot = OtSession(Party.CLIENT, extension="ferret")
        ot.setup(ch)
        k = ot.rot_recv(ch, c, 64)
        xr, kr = ot.rot_recv_random(ch, n, 40)
        chosen = ot.chosen_recv(ch, c, 37)
        return k, xr, kr, chosen

    def server(ch: Channel) -> Any:
        ot = OtSession(Party.SERVER, extension="ferret")
        ot.setup(ch)
        k0, k1 = ot.rot_send(ch, n, 64)
        r0, r1 = ot.rot_send_random(ch, n, 40)
        ot.chosen_send(ch, m0, m1, 37)
        return k0, k1, r0, r1

    (k, xr, kr, chosen), (k0, k1, r0, r1) = run_parties(client, server)
    np.testing.assert_array_equal(k, np.where(c == 1, k1, k0))
    np.testing.assert_array_equal(kr, np.where(xr == 1, r1, r0))
    assert (k0 != k1).mean() > 0.99 and int(r0.max()) < 1 << 40
    np.testing.assert_array_equal(chosen, np.where(c == 1, m1, m0))


@pytest.mark.parametrize("choice", [0, 1])
def test_views_are_uniform_whatever_the_choices(choice: int) -> None:
    """Constant choices: the derandomisation bits the sender sees are uniform, and so
    is the receiver's view of the SPCOT message and of the masked message pairs."""
    cl, sv = recording_pair()
    n = 1 << 15
    choices = np.full(n, choice, dtype=np.uint8)
    messages = (np.zeros(n, dtype=np.uint64), np.full(n, 255, dtype=np.uint64))
    out: list[Any] = []

    def client(ch: Channel) -> None:
        ot = OtSession(Party.CLIENT, extension="ferret")
        ot.setup(ch)
        out.append(ot.chosen_recv(ch, choices, 8))

    thread = threading.Thread(target=client, args=(cl,))
    thread.start()
    ot = OtSession(Party.SERVER, extension="ferret")
    ot.setup(sv)
    ot.chosen_send(sv, messages[0], messages[1], 8)
    thread.join(60)
    np.testing.assert_array_equal(out[0], messages[choice])
    assert len(sv.view[-1]) == n // 8  # one bit per OT
    assert chi_square_uniform_bytes(sv.view[-1]) < CHI2_LIMIT
    spcot = [m for m in cl.view if len(m) == lpn.SETUP.spcot_message_bytes]
    assert len(spcot) == 1 and chi_square_uniform_bytes(spcot[0]) < CHI2_LIMIT
    main = [m for m in cl.view if len(m) == lpn.MAIN.spcot_message_bytes]
    assert len(main) == 1 and chi_square_uniform_bytes(main[0]) < CHI2_LIMIT
    pairs = np.frombuffer(cl.view[-1], dtype=np.uint8).reshape(-1, 2)
    for col in range(2):
        assert chi_square_uniform_bytes(pairs[:, col].tobytes()) < CHI2_LIMIT


@settings(max_examples=25, deadline=None)
@given(
    depth=st.integers(1, 9),
    trees=st.integers(1, 5),
    seed=st.integers(0, 2**32 - 1),
)
def test_punctured_tree_matches_the_full_one_off_its_point(
    depth: int, trees: int, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    roots = rng.integers(0, 256, (trees, 16), dtype=np.uint8)
    leaves, sums = ggm.expand_full(roots, depth)  # (2^depth, trees, 16), node-major
    sides = rng.integers(0, 2, (trees, depth)).astype(np.uint8)
    known = sums[np.arange(trees)[:, None], np.arange(depth)[None, :], sides]
    got, alpha, total = ggm.expand_punctured(known, sides, depth)
    bits = (1 - sides.astype(np.int64)) << np.arange(depth)  # the root's branch is bit 0
    np.testing.assert_array_equal(alpha, bits.sum(axis=1))
    mask = np.ones(leaves.shape[:2], dtype=bool)
    mask[alpha, np.arange(trees)] = False
    np.testing.assert_array_equal(got[mask], leaves[mask])
    assert not got[alpha, np.arange(trees)].any()
    # The XOR of the other leaves, and the last level's side sums (its top position bit).
    np.testing.assert_array_equal(total, ggm.xor_all(got))
    half = 1 << (depth - 1)
    np.testing.assert_array_equal(sums[:, -1, 0], ggm.xor_all(leaves[:half]))
    np.testing.assert_array_equal(sums[:, -1, 1], ggm.xor_all(leaves[half:]))


@settings(max_examples=25, deadline=None)
@given(m=st.integers(1, 40), t=st.integers(1, 9), seed=st.integers(0, 2**32 - 1))
def test_ggm_fold_kernel_matches_numpy(m: int, t: int, seed: int) -> None:
    """The one-pass numba fold of a level gives numpy's children and side sums."""
    pytest.importorskip("numba")
    kernel = ggm._fold_kernel()
    assert kernel is not None
    rng = np.random.default_rng(seed)
    src = rng.integers(0, 1 << 63, (m * t, 2), dtype=np.uint64)
    kids = rng.integers(0, 1 << 63, (2 * m * t, 2), dtype=np.uint64)
    want_kids = kids.copy()
    want = ggm._fold_numpy(src, want_kids, m, t)
    got = np.full((2, t, 2), 5, dtype=np.uint64)
    kernel(src, kids, m, t, got)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(kids, want_kids)


def test_ggm_trees_without_numba(monkeypatch: pytest.MonkeyPatch) -> None:
    """The numpy fold grows the same trees (no numba needed)."""
    roots = np.random.default_rng(4).integers(0, 256, (5, 16), dtype=np.uint8)
    leaves, sums = ggm.expand_full(roots, 6)
    monkeypatch.setattr(ggm, "_fold_kernel", lambda: None)
    leaves_np, sums_np = ggm.expand_full(roots, 6)
    np.testing.assert_array_equal(leaves, leaves_np)
    np.testing.assert_array_equal(sums, sums_np)


def test_ggm_children_are_the_fixed_key_prg() -> None:
    """Level 1 of a tree: child b of root x is AES_{key_b}(x) xor x."""
    roots = np.random.default_rng(3).integers(0, 256, (3, 16), dtype=np.uint8)
    leaves, sums = ggm.expand_full(roots, 1)
    for b, key in enumerate((ggm.LEFT_KEY, ggm.RIGHT_KEY)):
        enc = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
        want = np.frombuffer(enc.update(roots.tobytes()), dtype=np.uint8).reshape(3, 16) ^ roots
        np.testing.assert_array_equal(leaves[b], want)
        np.testing.assert_array_equal(sums[:, 0, b], want)


@settings(max_examples=20, deadline=None)
@given(k=st.integers(1, 300), n=st.integers(1, 700), seed=st.integers(0, 2**32 - 1))
def test_lpn_encoding_is_linear_and_numba_matches_numpy(k: int, n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    key = lpn.matrix_key(seed % 7, seed % 5)
    a = rng.integers(0, 256, (k, 16), dtype=np.uint8)
    b = rng.integers(0, 256, (k, 16), dtype=np.uint8)
    bits = rng.integers(0, 2, k).astype(np.uint8)
    outs = []
    for use_numba in (True, False):
        out = np.zeros((n, 16), dtype=np.uint8)
        out_bits = np.zeros(n, dtype=np.uint8)
        lpn.encode(key, a, out, base_bits=bits, out_bits=out_bits, first_row=3, use_numba=use_numba)
        outs.append((out, out_bits))
    np.testing.assert_array_equal(outs[0][0], outs[1][0])
    np.testing.assert_array_equal(outs[0][1], outs[1][1])
    ea, eb, eab = (np.zeros((n, 16), np.uint8) for _ in range(3))
    lpn.encode(key, a, ea)
    lpn.encode(key, b, eb)
    lpn.encode(key, a ^ b, eab)
    np.testing.assert_array_equal(eab, ea ^ eb)
    # The bit encoding is the block encoding of the bits (bit 0 of byte 0).
    np.testing.assert_array_equal(outs[0][1], (lambda z: z[:, 0])(_encode_bits(key, bits, n)))


@settings(max_examples=20, deadline=None)
@given(k=st.integers(1, 300), n=st.integers(1, 700), seed=st.integers(0, 2**32 - 1))
def test_lpn_bits_kernel_matches_numpy(k: int, n: int, seed: int) -> None:
    """The bits-only kernel (32-bit words of the bit set) gives numpy's code bits,
    for any k (a partial last word) and any first row."""
    rng = np.random.default_rng(seed)
    key = lpn.matrix_key(seed % 3, 2)
    base = rng.integers(0, 256, (k, 16), dtype=np.uint8)
    bits = rng.integers(0, 2, k).astype(np.uint8)
    got, want = np.zeros(n, np.uint8), np.ones(n, np.uint8)
    lpn.Encoder(key, base, bits).encode_bits(got, first_row=seed % 1000)
    lpn.Encoder(key, base, bits, use_numba=False).encode_bits(want, first_row=seed % 1000)
    np.testing.assert_array_equal(got, want)


def _encode_bits(key: bytes, bits: np.ndarray, n: int) -> np.ndarray:
    base = np.zeros((bits.size, 16), dtype=np.uint8)
    base[:, 0] = bits
    out = np.zeros((n, 16), dtype=np.uint8)
    lpn.encode(key, base, out, first_row=3)
    return out


def test_lpn_encoder_assigns_or_adds() -> None:
    """``assign`` writes the code words over the output; the default XORs them in."""
    key = lpn.matrix_key(4, 9)
    rng = np.random.default_rng(2)
    base = rng.integers(0, 256, (500, 16), dtype=np.uint8)
    bits = rng.integers(0, 2, 500).astype(np.uint8)
    noise = rng.integers(0, 256, (3000, 16), dtype=np.uint8)
    noise_bits = rng.integers(0, 2, 3000).astype(np.uint8)
    for use_numba in (True, False):
        enc = lpn.Encoder(key, base, bits, use_numba=use_numba)
        words, word_bits = noise.copy(), noise_bits.copy()
        enc.encode(words, first_row=7, out_bits=word_bits, assign=True)
        added, added_bits = noise.copy(), noise_bits.copy()
        enc.encode(added, first_row=7, out_bits=added_bits)
        np.testing.assert_array_equal(added, words ^ noise)
        np.testing.assert_array_equal(added_bits, word_bits ^ noise_bits)
    with pytest.raises(SnniError):
        lpn.Encoder(key, base, bits[:-1])


def test_lpn_rows_start_anywhere() -> None:
    """Encoding rows 0..n in one call equals encoding them in two slices."""
    key = lpn.matrix_key(1, 2)
    base = np.random.default_rng(1).integers(0, 256, (1000, 16), dtype=np.uint8)
    whole = np.zeros((70_000, 16), dtype=np.uint8)
    lpn.encode(key, base, whole)
    parts = np.zeros((70_000, 16), dtype=np.uint8)
    lpn.encode(key, base, parts[:12_345], first_row=0)
    lpn.encode(key, base, parts[12_345:], first_row=12_345)
    np.testing.assert_array_equal(whole, parts)


def test_parameter_sets_bootstrap_each_other() -> None:
    for p in (lpn.SETUP, lpn.MAIN):
        assert p.n == p.t << p.log_leaves and p.reserve < p.n
    assert lpn.SETUP.n > lpn.MAIN.reserve  # the setup iteration feeds the first main one
    # Amortised iteration traffic per usable COT, well under one bit.
    per_cot = 8 * lpn.MAIN.spcot_message_bytes / (lpn.MAIN.n - lpn.MAIN.reserve)
    assert per_cot < 0.5
    with pytest.raises(SnniError):
        lpn.LpnParams(name="bad", n=1000, k=10, t=3, log_leaves=8)


def test_misuse_is_rejected() -> None:
    with pytest.raises(SnniError):
        lpn.encode(lpn.matrix_key(0, 0), np.zeros((2, 16), np.uint8), np.zeros((3, 8), np.uint8))
    with pytest.raises(SnniError):
        ggm.expand_full(np.zeros((2, 16), np.uint8), 0)
    with pytest.raises(SnniError):
        ggm.expand_punctured(np.zeros((2, 3, 16), np.uint8), np.zeros((2, 4), np.uint8), 4)
    with pytest.raises(SnniError):  # an output without room for 2^4 x 2 leaves
        ggm.expand_full(np.zeros((2, 16), np.uint8), 4, np.zeros(16 * 32, np.uint8))


@pytest.mark.usefixtures("small_main")
def test_cot_correlation_without_numba(monkeypatch: pytest.MonkeyPatch) -> None:
    """The numpy fallback of the LPN code gives the same correlation (no numba needed)."""
    monkeypatch.setattr(lpn, "_block_kernel", lambda: None)
    assert not lpn.accelerated()
    count = lpn.SETUP.n - lpn.SETUP.reserve + 10  # crosses into a second main iteration
    (x, t, _, _), (q, delta, _, _) = _both_ways(run_pair, count, 8)
    np.testing.assert_array_equal(t, q ^ ((x * np.uint8(0xFF))[:, None] & delta))


def test_kernel_choice_falls_back_past_a_broken_kernel(monkeypatch: pytest.MonkeyPatch) -> None:
    """A kernel that fails to compile (an LLVM without the prefetch hint) or gives wrong
    words is skipped for the next one, and none at all leaves the numpy fallback."""
    pytest.importorskip("numba")
    from secfepas_sdk.snni.ot import _lpn_kernel

    def broken(*args: Any) -> None:
        raise RuntimeError("no such intrinsic")

    def wrong(base: Any, out: Any, *args: Any) -> None:
        out[:] ^= 1

    choose = lpn._block_kernel
    try:
        monkeypatch.setattr(lpn, "_kernels", lambda: (broken, wrong, _lpn_kernel.encode_plain))
        choose.cache_clear()  # type: ignore[attr-defined]
        assert lpn.accelerated() and choose() is _lpn_kernel.encode_plain
        monkeypatch.setattr(lpn, "_kernels", lambda: (broken,))
        choose.cache_clear()  # type: ignore[attr-defined]
        assert not lpn.accelerated()
    finally:
        monkeypatch.undo()
        choose.cache_clear()  # type: ignore[attr-defined]
    assert choose() in (_lpn_kernel.encode_prefetch, _lpn_kernel.encode_plain)  # restored


def test_parties_on_different_extensions_fail_at_setup_naming_both() -> None:
    """Ferret's bootstrap carries its own SoftSpokenOT header: a Ferret party facing a
    SoftSpokenOT one stops in the setup with an error that names both."""

    def party(extension: str, who: Party) -> Callable[[Channel], None]:
        return lambda ch: OtSession(who, extension=extension).setup(ch)

    with pytest.raises(SnniError, match="both parties must choose the same") as exc:
        run_pair(party("ferret", Party.CLIENT), party("softspoken", Party.SERVER), timeout_s=60)
    assert "ferret" in str(exc.value) and "softspoken" in str(exc.value)
