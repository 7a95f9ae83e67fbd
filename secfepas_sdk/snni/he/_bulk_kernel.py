"""numba kernel of the bulk kernel NTT (imported by :mod:`.bulk` only if numba is there).

A module-level function, so that numba's on-disk cache serves it (a closure would
recompile in every process). Only public data and the edge's own weights pass
through it; it writes into memory the caller owns.
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
def reduce_limbs(  # pragma: no cover - compiled
    a0: Any, a1: Any, a2: Any, q: int, shift: int, out: Any
) -> None:
    """out[r, x] = (a2 * 2^(2 shift) + a1 * 2^shift + a0)[r, x] mod q, in [0, q).

    a0, a1, a2: (m, n) float64 holding exact integers (the limb products), each below
    2^53 in magnitude; |the total| < 2^93. The quotient is estimated in float64 (off by
    at most one for q > 2^50) and corrected with exact wrapping uint64 arithmetic."""
    m, n = a0.shape
    uq = np.uint64(q)
    inv = 1.0 / float(q)
    s1 = float(2**shift)
    s2 = s1 * s1
    u1 = np.uint64(shift)
    u2 = np.uint64(2 * shift)
    for r in range(m):
        for x in range(n):
            v0 = a0[r, x]
            v1 = a1[r, x]
            v2 = a2[r, x]
            est = np.int64(np.floor((v2 * s2 + v1 * s1 + v0) * inv))
            rem = (
                (np.uint64(np.int64(v2)) << u2)
                + (np.uint64(np.int64(v1)) << u1)
                + np.uint64(np.int64(v0))
                - np.uint64(est) * uq
            )
            v = np.int64(rem)
            if v < 0:
                v += q
            elif v >= q:
                v -= q
            out[r, x] = np.uint64(v)
