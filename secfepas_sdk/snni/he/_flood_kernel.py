"""numba kernel of the flood's residues (imported by :mod:`.flooding` only if numba is there).

A module-level function, so that numba's on-disk cache serves it. The pieces are the
edge's secret flood E (its own randomness); the kernel only reduces them mod each
working prime, into memory the caller owns.
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
def flood_residues(  # pragma: no cover - compiled
    pieces: Any, consts: Any, ratios: Any, offsets: Any, moduli: Any, out: Any
) -> None:
    """out[p, x] = (offsets[p] + sum_j pieces[j, x] * consts[p, j]) mod moduli[p], in [0, q).

    pieces[j, x] < 2^32, consts[p, j] < q < 2^62, ratios[p, j] = consts[p, j] / q in
    float64, offsets[p] < q. Each product is reduced as flooding._mulmod does: the float
    quotient is off by at most one, so the remainder, computed modulo 2^64, lies in
    [-q, 2q) and is exact as an int64; the running sum stays below q."""
    primes, count = consts.shape
    n = pieces.shape[1]
    for p in range(primes):
        q = moduli[p]
        qi = np.int64(q)
        row = out[p]
        for x in range(n):
            row[x] = offsets[p]
        for j in range(count):  # x innermost: one vectorisable pass per piece
            c = consts[p, j]
            ratio = ratios[p, j]
            piece = pieces[j]
            for x in range(n):
                u = piece[x]
                quot = np.uint64(np.floor(np.float64(u) * ratio))
                r = np.int64(u * c - quot * q)
                r = r + qi if r < 0 else r
                r = r - qi if r >= qi else r
                v = row[x] + np.uint64(r)
                row[x] = v - q if v >= q else v
