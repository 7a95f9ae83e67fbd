"""Bit-level helpers for OT extension: the 128 x m bit transpose and tight packing
(numba kernels when numba is there, numpy otherwise: the same bytes).

Bit order is little-endian everywhere: bit ``j`` of a packed row is
``(row[j // 8] >> (j % 8)) & 1`` (numpy's ``bitorder="little"``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import NDArray

from secfepas_sdk.errors import SnniError
from secfepas_sdk.snni.kernels import checked_kernel

U8 = NDArray[np.uint8]
U64 = NDArray[np.uint64]

_M1 = np.uint64(0x00AA00AA00AA00AA)
_M2 = np.uint64(0x0000CCCC0000CCCC)
_M3 = np.uint64(0x00000000F0F0F0F0)
_S7, _S14, _S28 = np.uint64(7), np.uint64(14), np.uint64(28)
_PACK_CHUNK = 1 << 18


def _transpose8x8(x: U64) -> None:
    """In place: each uint64 is an 8x8 bit matrix (byte = row, bit = column)."""
    t = (x ^ (x >> _S7)) & _M1
    x ^= t ^ (t << _S7)
    t = (x ^ (x >> _S14)) & _M2
    x ^= t ^ (t << _S14)
    t = (x ^ (x >> _S28)) & _M3
    x ^= t ^ (t << _S28)


def _build_numba() -> Callable[[U8, U8], None] | None:
    """The transpose as a numba kernel (about 10x faster), or None without numba."""
    try:
        import numba
    except ImportError:
        return None

    @numba.njit(cache=True, nogil=True)
    def kernel(rows: Any, out: Any) -> None:  # pragma: no cover - compiled
        r, mb = rows.shape
        m1 = np.uint64(0x00AA00AA00AA00AA)
        m2 = np.uint64(0x0000CCCC0000CCCC)
        m3 = np.uint64(0x00000000F0F0F0F0)
        for g in range(r // 8):
            for c in range(mb):
                x = np.uint64(0)
                for i in range(8):
                    x |= np.uint64(rows[8 * g + i, c]) << np.uint64(8 * i)
                t = (x ^ (x >> np.uint64(7))) & m1
                x ^= t ^ (t << np.uint64(7))
                t = (x ^ (x >> np.uint64(14))) & m2
                x ^= t ^ (t << np.uint64(14))
                t = (x ^ (x >> np.uint64(28))) & m3
                x ^= t ^ (t << np.uint64(28))
                for j in range(8):
                    out[8 * c + j, g] = np.uint8((x >> np.uint64(8 * j)) & np.uint64(0xFF))

    return kernel


_NUMBA: list[Callable[[U8, U8], None] | None] = []


def _numba_kernel() -> Callable[[U8, U8], None] | None:
    if not _NUMBA:
        _NUMBA.append(_build_numba())
    return _NUMBA[0]


def warm_up() -> None:
    """Load (and if needed compile) the accelerated kernels ahead of time."""
    transpose_rows(np.zeros((8, 1), dtype=np.uint8))
    _pack_kernels()


def transpose_rows(rows: U8) -> U8:
    """Transpose a (r, mb) packed bit matrix (r rows of 8*mb bits, r % 8 == 0)
    into (8*mb, r // 8) bytes: output row j holds bit j of every input row.

    Bit-sliced: the matrix is cut into 8x8 bit blocks, each held in one uint64
    and transposed with three delta swaps, so numpy never touches single bits.
    """
    r, mb = rows.shape
    if r % 8:
        raise SnniError(f"row count {r} is not a multiple of 8")
    kernel = _numba_kernel()
    if kernel is not None:
        out_fast = np.empty((mb * 8, r // 8), dtype=np.uint8)
        kernel(np.ascontiguousarray(rows), out_fast)
        return out_fast
    return transpose_rows_numpy(rows)


def transpose_rows_numpy(rows: U8) -> U8:
    """The numpy fallback of :func:`transpose_rows`."""
    r, mb = rows.shape
    blocks = np.ascontiguousarray(rows.reshape(r // 8, 8, mb).transpose(0, 2, 1))
    words = blocks.view(np.uint64).reshape(r // 8, mb)
    _transpose8x8(words)
    out = words.view(np.uint8).reshape(r // 8, mb, 8).transpose(1, 2, 0)
    return np.ascontiguousarray(out).reshape(mb * 8, r // 8)


def packed_size(count: int, width: int) -> int:
    return (count * width + 7) // 8


def pack_bits(values: NDArray[np.unsignedinteger], width: int) -> bytes:
    """The low ``width`` bits of each value, concatenated without padding (a numba
    kernel when available, else :func:`pack_bits_numpy`: the same bytes)."""
    if not 1 <= width <= 64:
        raise SnniError(f"bit width must be in 1..64, got {width}")
    flat = np.ascontiguousarray(values).reshape(-1)
    if width == 1:
        return np.packbits(flat.astype(np.uint8) & 1, bitorder="little").tobytes()
    kernels = _pack_kernels()
    if kernels is None:
        return pack_bits_numpy(flat, width)
    out = np.empty(packed_size(flat.size, width), dtype=np.uint8)
    kernels[0](flat.astype(np.uint64, copy=False), width, out)
    return out.tobytes()


def pack_bits_numpy(values: NDArray[np.unsignedinteger], width: int) -> bytes:
    """The numpy form of :func:`pack_bits` (each value expanded to its bits)."""
    if not 1 <= width <= 64:
        raise SnniError(f"bit width must be in 1..64, got {width}")
    flat = np.ascontiguousarray(values).reshape(-1)
    if width == 1:
        return np.packbits(flat.astype(np.uint8) & 1, bitorder="little").tobytes()
    nbytes = flat.dtype.itemsize
    if width > 8 * nbytes:
        flat = flat.astype(np.uint64)
        nbytes = 8
    parts = []
    # Chunks of a multiple of 8 values keep each chunk byte-aligned.
    for start in range(0, flat.size, _PACK_CHUNK):
        chunk = flat[start : start + _PACK_CHUNK]
        bits = np.unpackbits(chunk.view(np.uint8).reshape(-1, nbytes), axis=1, bitorder="little")
        parts.append(np.packbits(bits[:, :width], bitorder="little").tobytes())
    return b"".join(parts)


def _unpack_checked(buf: bytes, count: int, width: int, dtype: type) -> np.dtype[Any]:
    if len(buf) != packed_size(count, width):
        raise SnniError(f"packed buffer of {len(buf)} bytes, expected {packed_size(count, width)}")
    dt = np.dtype(dtype)
    if width > 8 * dt.itemsize:
        raise SnniError(f"width {width} does not fit in {dt}")
    return dt


def unpack_bits(buf: bytes, count: int, width: int, dtype: type = np.uint64) -> NDArray[np.generic]:
    """Inverse of :func:`pack_bits`; the buffer length must match exactly (a numba
    kernel when available, else :func:`unpack_bits_numpy`)."""
    dt = _unpack_checked(buf, count, width, dtype)
    kernels = _pack_kernels() if width > 1 else None
    if kernels is None:
        return unpack_bits_numpy(buf, count, width, dtype)
    out = np.empty(count, dtype=np.uint64)
    kernels[1](np.frombuffer(buf, dtype=np.uint8), width, out)
    return out if dt == np.uint64 else out.astype(dt)


def unpack_bits_numpy(
    buf: bytes, count: int, width: int, dtype: type = np.uint64
) -> NDArray[np.generic]:
    """The numpy form of :func:`unpack_bits`."""
    dt = _unpack_checked(buf, count, width, dtype)
    raw = np.frombuffer(buf, dtype=np.uint8)
    if width == 1:
        return np.unpackbits(raw, count=count, bitorder="little").astype(dt)
    out = np.empty(count, dtype=dt)
    nbytes = dt.itemsize
    for start in range(0, count, _PACK_CHUNK):
        stop = min(count, start + _PACK_CHUNK)
        lo, hi = start * width, stop * width
        byte_lo = lo // 8  # start is a multiple of 8 so lo is byte aligned
        bits = np.unpackbits(raw[byte_lo : (hi + 7) // 8], bitorder="little")[: hi - lo]
        full = np.zeros((stop - start, 8 * nbytes), dtype=np.uint8)
        full[:, :width] = bits.reshape(stop - start, width)
        out[start:stop] = np.packbits(full, axis=1, bitorder="little").view(dt).reshape(-1)
    return out


@checked_kernel
def _pack_kernels() -> tuple[Callable[..., None], Callable[..., None]] | None:
    """The numba (pack, unpack) kernels if they give the numpy forms' results on
    every width (checked once per process), else None."""
    from secfepas_sdk.snni.ot import _kernels as kb

    rng = np.random.default_rng(11)
    ok = True
    for width in range(2, 65):
        vals = rng.integers(0, 1 << 63, 37, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
        raw = np.empty(packed_size(vals.size, width), dtype=np.uint8)
        kb.pack(vals, width, raw)
        got = np.empty(vals.size, dtype=np.uint64)
        kb.unpack(raw, width, got)
        want = pack_bits_numpy(vals, width)
        ok = ok and raw.tobytes() == want
        ok = ok and np.array_equal(got, unpack_bits_numpy(want, vals.size, width))
    return (kb.pack, kb.unpack) if ok else None
