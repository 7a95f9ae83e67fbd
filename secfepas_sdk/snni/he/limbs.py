"""Residues mod q as float64 limbs and back: the exact integer arithmetic of the
direct products (direct.py, direct_outputs.py).

A residue x mod q (q < 2^60) is centred (|x| < 2^59) and split into balanced limbs of
b bits, x = sum_t d_t 2^(b t) with |d_t| <= 2^(b-1); float64 holds every integer below
2^53, so a weight product stays exact while L1 * 2^(b-1) < 2^53 (the plan's public L1
bound picks b). Sums of limb products are then recombined mod q in uint64 steps.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from secfepas_sdk.errors import SnniError

U64 = NDArray[np.uint64]
F64 = NDArray[np.float64]

EXACT_BITS = 53  # float64 holds every integer of magnitude below 2^53
MIN_LIMB_BITS = 8
RESIDUE_BITS = 60  # every working prime is below 2^60
_SHIFT_STEP = 4  # (r << 4) stays below 2^64 for r < q < 2^60


def limb_bits(l1_bound: float) -> int:
    """Limb width b with L1 * 2^(b-1) < 2^53 for the plan's public bound L1 (balanced
    limbs: |limb| <= 2^(b-1)); L1 < 2^need, so b = 54 - need."""
    need = math.ceil(math.log2(max(l1_bound, 1.0) + 1.0))
    return min(EXACT_BITS + 1 - need, RESIDUE_BITS)


def limb_count(bits: int) -> int:
    return -(-RESIDUE_BITS // bits)


def _shift_mod(r: U64, bits: int, q: np.uint64) -> U64:
    """r * 2^bits mod q for r < q < 2^60, in steps that never leave uint64."""
    done = 0
    while done < bits:
        step = min(_SHIFT_STEP, bits - done)
        r = (r << np.uint64(step)) % q
        done += step
    return r


def recombine(acc: F64, q: int, bits: int) -> U64:
    """sum_t acc[..., t, :] * 2^(bits t) mod q, in [0, q): ``acc`` (..., limbs, N) holds
    exact integers of magnitude below 2^53 (any sign)."""
    uq = np.uint64(q)
    parts = np.mod(acc.astype(np.int64), np.int64(q)).astype(np.uint64)  # [0, q)
    limbs = parts.shape[-2]
    r = parts[..., limbs - 1, :].copy()
    for t in range(limbs - 2, -1, -1):
        r = (_shift_mod(r, bits, uq) + parts[..., t, :]) % uq
    return r


def split_limbs(x: U64, q: int, bits: int, limbs: int) -> F64:
    """(..., N) residues mod q (q < 2^60) as (..., limbs, N) float64 balanced limbs:
    x = sum_t d_t 2^(bits t) mod q with |d_t| <= 2^(bits-1), from the centred residue
    (|x| < 2^59; bits * limbs >= 60 leaves the top limb within the same bound)."""
    if not 2 < q < 1 << RESIDUE_BITS or bits * limbs < RESIDUE_BITS or bits > EXACT_BITS:
        raise SnniError("residues that do not split into balanced limbs")
    v = x.astype(np.int64)
    v = np.where(v > (q - 1) // 2, v - np.int64(q), v)
    half, mask = np.int64(1 << (bits - 1)), np.int64((1 << bits) - 1)
    out = np.empty((*x.shape[:-1], limbs, x.shape[-1]), dtype=np.float64)
    for t in range(limbs - 1):
        d = ((v + half) & mask) - half  # in [-2^(bits-1), 2^(bits-1))
        out[..., t, :] = d
        v = (v - d) >> np.int64(bits)  # exact: v - d is a multiple of 2^bits
    if v.size and int(np.abs(v).max()) > int(half):
        raise SnniError("a residue does not fit its balanced limbs")
    out[..., limbs - 1, :] = v
    return out
