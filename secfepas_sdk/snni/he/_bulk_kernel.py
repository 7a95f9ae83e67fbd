"""numba kernel of the bulk kernel NTT (imported by :mod:`.bulk` only if numba is there).

A module-level function, so that numba's on-disk cache serves it (a closure would
recompile in every process). Only public data and the edge's own weights pass
through it; it writes into memory the caller owns.
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np

CHUNK = 256  # NTT slots per pass: the basis rows of one chunk stay in L2


@numba.njit(cache=True, nogil=True)
def combine(  # pragma: no cover - compiled
    rows: Any, vlo: Any, vhi: Any, moduli: Any, shift: int, out: Any
) -> None:
    """out[r, l, x] = sum_j rows[r, j] * (vhi[l, j, x] * 2^shift + vlo[l, j, x]) mod moduli[l].

    rows: (m, k) int64 signed weights; vlo, vhi: (limbs, k, n) int64 limbs of the
    basis residues; out: (m, limbs, n) uint64, canonical residues in [0, q).
    The caller guarantees sum_j |rows[r, j]| * 2^shift < 2^62, so both int64 sums are
    exact; the reduction estimates the quotient in float64 (off by at most one) and
    corrects it with exact wrapping uint64 arithmetic. Every weight is multiplied,
    zero or not: the time depends on the shapes only."""
    m, k = rows.shape
    limbs = vlo.shape[0]
    n = vlo.shape[2]
    acc_lo = np.empty(CHUNK, np.int64)
    acc_hi = np.empty(CHUNK, np.int64)
    scale = float(2**shift)
    ushift = np.uint64(shift)
    for lb in range(limbs):
        q = moduli[lb]
        uq = np.uint64(q)
        inv = 1.0 / float(q)
        for x0 in range(0, n, CHUNK):
            width = min(CHUNK, n - x0)
            for r in range(m):
                for x in range(width):
                    acc_lo[x] = 0
                    acc_hi[x] = 0
                for j in range(k):
                    w = rows[r, j]
                    for x in range(width):
                        acc_lo[x] += w * vlo[lb, j, x0 + x]
                        acc_hi[x] += w * vhi[lb, j, x0 + x]
                for x in range(width):
                    hi = acc_hi[x]
                    lo = acc_lo[x]
                    est = np.int64(np.floor((float(hi) * scale + float(lo)) * inv))
                    rem = (np.uint64(hi) << ushift) + np.uint64(lo) - np.uint64(est) * uq
                    v = np.int64(rem)
                    if v < 0:
                        v += q
                    elif v >= q:
                        v -= q
                    out[r, lb, x0 + x] = np.uint64(v)
