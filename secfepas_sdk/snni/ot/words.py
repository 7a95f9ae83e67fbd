"""1-out-of-N OT payloads packed in one 64-bit word per instance (N * width <= 64).

The packed-word fast path of :mod:`.session`'s 1-of-N OT (same construction, same
bytes): the sender spreads each random-OT key's slots into the instance's word of N
masks through lookup tables, so the cost is O(log N) lookups per instance; the
receiver unmasks its chosen message with shifts looked up per choice. Both have a
numba pass (:mod:`._kernels`), checked once against the numpy form, which runs
without numba. Who holds what: the sender its two keys per OT and its messages, the
receiver its chosen keys and choices; only the masked words travel.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray

from secfepas_sdk.errors import SnniError
from secfepas_sdk.snni.kernels import checked_kernel
from secfepas_sdk.snni.ot.session import _mask, slot_width

U64 = NDArray[np.uint64]


def _spread_tables(log_n: int, width: int) -> NDArray[np.uint64]:
    """LUT[t, b, j, byte]: where the bits of byte j of key K_t^b land in the
    instance's packed word of N masks (message v at bits [v*width, (v+1)*width))."""
    key_bits = slot_width(log_n, width)
    nbytes = (key_bits + 7) // 8
    lut = np.zeros((log_n, 2, nbytes, 256), dtype=np.uint64)
    values = np.arange(256)
    for t in range(log_n):
        for b in range(2):
            for kb in range(key_bits):
                slot, e = divmod(kb, width)
                low = slot & ((1 << t) - 1)
                v = low | (b << t) | ((slot >> t) << (t + 1))
                target = np.uint64(1 << (v * width + e))
                j, i = divmod(kb, 8)
                lut[t, b, j, ((values >> i) & 1) == 1] |= target
    return lut


_LUTS: dict[tuple[int, int], NDArray[np.uint64]] = {}


def _lut(log_n: int, width: int) -> NDArray[np.uint64]:
    key = (log_n, width)
    if key not in _LUTS:
        if (width << log_n) > 64 or (width << log_n) % 8:
            raise SnniError("packed 1-of-N needs N*width <= 64 and a whole number of bytes")
        _LUTS[key] = _spread_tables(log_n, width)
    return _LUTS[key]


def words_payload(keys0_1: tuple[U64, U64], words: U64, log_n: int, width: int) -> bytes:
    """Sender: like :func:`one_of_n_payload`, with the N messages of instance j
    already packed in ``words[j]`` (message v at bits v*width). Table lookups
    spread each key's slots in place, so the cost is O(log N) array ops."""
    lut = _lut(log_n, width)
    n = int(words.size)
    kernel = _spread_kernel()
    if kernel is not None:
        masked = np.empty(n, dtype=np.uint64)
        k0, k1 = (np.ascontiguousarray(k, dtype=np.uint64).reshape(-1) for k in keys0_1)
        if k0.size != n * log_n or k1.size != n * log_n:
            raise SnniError("1-of-N keys do not match the instances")
        kernel(words.reshape(-1).astype(np.uint64, copy=False), k0, k1, lut, log_n, masked)
    else:
        masked = _spread_numpy(keys0_1, words, log_n, lut)
    per = (width << log_n) // 8
    return masked.view(np.uint8).reshape(n, 8)[:, :per].tobytes()


def _spread_numpy(keys0_1: tuple[U64, U64], words: U64, log_n: int, lut: U64) -> U64:
    """numpy form of the spread: one table lookup pass per key, position and byte."""
    n = int(words.size)
    masked = words.reshape(-1).astype(np.uint64, copy=True)
    nbytes = lut.shape[2]
    for b, keys in enumerate(keys0_1):
        kb = np.ascontiguousarray(keys.reshape(n, log_n)).view(np.uint8).reshape(n, log_n, 8)
        for t in range(log_n):
            for j in range(nbytes):
                masked ^= lut[t, b, j][kb[:, t, j]]
    return masked


_CHECKS = ((2, 2), (3, 2), (5, 2), (3, 1), (2, 16))  # (log N, width) of the kernel checks


@checked_kernel
def _spread_kernel() -> Callable[..., None] | None:
    """The numba spread if it gives the numpy form's words (checked once), else None."""
    from secfepas_sdk.snni.ot._kernels import spread_keys

    rng, ok = np.random.default_rng(19), True
    for log_n, width in _CHECKS:
        lut = _lut(log_n, width)
        k0, k1, words = (rng.integers(0, 1 << 63, 9 * n, np.uint64) for n in (log_n, log_n, 1))
        got = np.empty(9, dtype=np.uint64)
        spread_keys(words, k0, k1, lut, log_n, got)
        ok = ok and np.array_equal(got, _spread_numpy((k0, k1), words, log_n, lut))
    return spread_keys if ok else None


_SHIFTS: dict[tuple[int, int], NDArray[np.uint64]] = {}


def _decode_shifts(log_n: int, width: int) -> NDArray[np.uint64]:
    """Row 0: v * width (where message v sits); row t + 1: pos(v, t) * width (where
    key t's slot for v sits), for every choice v."""
    key = (log_n, width)
    if key not in _SHIFTS:
        v = np.arange(1 << log_n)
        rows = [v * width]
        rows += [((v & ((1 << t) - 1)) | ((v >> (t + 1)) << t)) * width for t in range(log_n)]
        _SHIFTS[key] = np.array(rows, dtype=np.uint64)
    return _SHIFTS[key]


def words_decode(key: U64, raw: bytes, choices: U64, log_n: int, width: int) -> U64:
    """Receiver side of :func:`words_payload` (shifts looked up per choice)."""
    return _words_decode(key, raw, choices, log_n, width, _decode_kernel())


def _words_decode(
    key: U64, raw: bytes, choices: U64, log_n: int, width: int, kernel: Callable[..., None] | None
) -> U64:
    n = int(choices.size)
    per = (width << log_n) // 8
    if len(raw) != n * per:
        raise SnniError(f"1-of-N payload of {len(raw)} bytes, expected {n * per}")
    c = choices.reshape(-1)
    if n and int(c.max()) >= (1 << log_n):
        raise SnniError("1-of-N choice out of range")
    c8 = c.astype(np.uint8)
    if per in (1, 2, 4, 8):
        words = np.frombuffer(raw, dtype=f"<u{per}").astype(np.uint64)
    else:
        full = np.zeros((n, 8), dtype=np.uint8)
        full[:, :per] = np.frombuffer(raw, dtype=np.uint8).reshape(n, per)
        words = full.view(np.uint64).reshape(-1)
    shifts = _decode_shifts(log_n, width)
    if kernel is not None:
        got = np.empty(n, dtype=np.uint64)
        flat_key = np.ascontiguousarray(key, dtype=np.uint64).reshape(-1)
        if flat_key.size != n * log_n:
            raise SnniError("1-of-N keys do not match the instances")
        kernel(words, flat_key, c8, shifts, log_n, _mask(width), got)
        return got
    out = words >> np.take(shifts[0], c8)
    key = key.reshape(n, log_n)
    for t in range(log_n):
        out ^= key[:, t] >> np.take(shifts[t + 1], c8)
    out &= _mask(width)
    return np.asarray(out, dtype=np.uint64)


def warm_up() -> None:
    """Check (and load or compile) both numba passes now, not in the first layer."""
    _spread_kernel()
    _decode_kernel()


@checked_kernel
def _decode_kernel() -> Callable[..., None] | None:
    """The numba decode if it gives the numpy form's messages (checked once), else None."""
    from secfepas_sdk.snni.ot._kernels import unspread

    rng, ok = np.random.default_rng(23), True
    for log_n, width in _CHECKS:
        c = rng.integers(0, 1 << log_n, 9).astype(np.uint64)
        key = rng.integers(0, 1 << 63, 9 * log_n, dtype=np.uint64)
        raw = rng.bytes(9 * ((width << log_n) // 8))
        want = _words_decode(key, raw, c, log_n, width, None)
        ok = ok and np.array_equal(_words_decode(key, raw, c, log_n, width, unspread), want)
    return unspread if ok else None
