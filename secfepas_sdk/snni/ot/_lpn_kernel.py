"""numba kernels of the LPN encoding (imported by :mod:`.lpn` only if numba is there).

Module-level functions, so that numba's on-disk cache serves them (a closure
recompiles in every process: about 2 s).

Each output row gets the XOR of its D table rows, XORed in (``assign`` false) or
written over what was there. ``encode_prefetch`` asks the cache for the table rows
of the row ``PREFETCH`` ahead (LLVM's prefetch: a hint, it never faults) so that
the D random reads of several rows overlap: about 2x on a 9 MB table here.
``encode_plain`` is the same without the hint, for an LLVM that lacks the intrinsic.
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils as _cgutils
from numba.extending import intrinsic

cgutils: Any = _cgutils  # untyped helpers

PREFETCH = 6  # rows ahead


def _prefetch_typer(typingctx: Any, arr: Any, index: Any) -> Any:  # pragma: no cover - compiled
    sig = types.void(arr, index)

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        aty = signature.args[0]
        ary = context.make_array(aty)(context, builder, args[0])
        idx = [args[1]] + [context.get_constant(types.intp, 0)] * (aty.ndim - 1)
        ptr = cgutils.get_item_pointer(context, builder, aty, ary, idx, wraparound=False)
        i8p = ir.IntType(8).as_pointer()
        i32 = ir.IntType(32)
        fnty = ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0")
        # read, high temporal locality, data cache
        flags = [ir.Constant(i32, 0), ir.Constant(i32, 3), ir.Constant(i32, 1)]
        builder.call(fn, [builder.bitcast(ptr, i8p), *flags])
        return context.get_dummy_value()

    return sig, codegen


_prefetch: Any = intrinsic(_prefetch_typer)


@numba.njit(cache=True, nogil=True, inline="always")
def _row(
    base: Any,
    out: Any,
    idx: Any,
    bitset: Any,
    out_bits: Any,
    start: Any,
    j: Any,
    k: Any,
    assign: Any,
) -> None:  # pragma: no cover - compiled
    a0 = np.uint64(0)
    a1 = np.uint64(0)
    bit = np.uint8(0)
    with_bits = out_bits.shape[0] > 0
    for r in range(idx.shape[1]):
        i = (np.uint64(idx[j, r]) * k) >> np.uint64(32)
        a0 ^= base[i, 0]
        a1 ^= base[i, 1]
        if with_bits:
            bit ^= (bitset[i >> np.uint64(3)] >> (i & np.uint64(7))) & np.uint8(1)
    if assign:
        out[start + j, 0] = a0
        out[start + j, 1] = a1
        if with_bits:
            out_bits[start + j] = bit
    else:
        out[start + j, 0] ^= a0
        out[start + j, 1] ^= a1
        if with_bits:
            out_bits[start + j] ^= bit


@numba.njit(cache=True, nogil=True)
def encode_prefetch(
    base: Any, out: Any, idx: Any, bitset: Any, out_bits: Any, start: Any, assign: Any
) -> None:  # pragma: no cover - compiled
    k = np.uint64(base.shape[0])
    n = idx.shape[0]
    for j in range(n):
        nxt = j + PREFETCH
        if nxt < n:
            for r in range(idx.shape[1]):
                _prefetch(base, (np.uint64(idx[nxt, r]) * k) >> np.uint64(32))
        _row(base, out, idx, bitset, out_bits, start, j, k, assign)


@numba.njit(cache=True, nogil=True)
def encode_plain(
    base: Any, out: Any, idx: Any, bitset: Any, out_bits: Any, start: Any, assign: Any
) -> None:  # pragma: no cover - compiled
    k = np.uint64(base.shape[0])
    for j in range(idx.shape[0]):
        _row(base, out, idx, bitset, out_bits, start, j, k, assign)


@numba.njit(cache=True, nogil=True)
def encode_bits(
    bitset32: Any, out_bits: Any, idx: Any, start: Any, k_rows: Any
) -> None:  # pragma: no cover - compiled
    """Bits only, written over out_bits: the receiver's x code words. The bit set is
    read as little-endian 32-bit words (bit i is bit i & 31 of word i >> 5, the same
    bits as the packed bytes), and the low bit is taken once per row, not per read:
    about 1.6x faster than byte reads (the words stay in cache, so no prefetch)."""
    k = np.uint64(k_rows)
    for j in range(idx.shape[0]):
        acc = np.uint32(0)
        for r in range(idx.shape[1]):
            i = (np.uint64(idx[j, r]) * k) >> np.uint64(32)
            acc ^= np.uint32(bitset32[i >> np.uint64(5)] >> np.uint32(i & np.uint64(31)))
        out_bits[start + j] = np.uint8(acc & np.uint32(1))
