"""numba kernels of the direct products (imported by :mod:`.direct` only if numba is
there): :func:`split_limbs_into` cuts each input into its float limbs as it arrives;
:func:`shift_recombine` shifts and recombines after one weight product of every column,
or :func:`shift_add_chunk` per column chunk of it and :func:`recombine_limbs` at the end
(the chunked product, which keeps each chunk in cache).

Module-level functions, so that numba's on-disk cache serves them (a closure would
recompile in every process). Only the edge's own products pass through it (its
weights times the camera's ciphertexts: nothing it could not compute anyway); it
writes into memory the caller owns.
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
def split_limbs_into(  # pragma: no cover - compiled
    x: Any, moduli: Any, bits: int, out: Any
) -> bool:
    """out[c, p, t, i] = the t-th balanced limb of the centred x[c, p, i] mod moduli[p]:
    :func:`.limbs.split_limbs` for every prime in one pass, written in place (the
    numpy form makes about 20 temporaries per prime: 4 ms per q218 ciphertext against
    about 0.1 ms here). False if a top limb exceeds 2^(bits-1) (the caller refuses)."""
    comps, primes, n = x.shape
    limbs = out.shape[2]
    half = np.int64(1) << np.int64(bits - 1)
    mask = (np.int64(1) << np.int64(bits)) - np.int64(1)
    shift = np.int64(bits)
    ok = True
    for c in range(comps):
        for p in range(primes):
            q = np.int64(moduli[p])
            top = (q - np.int64(1)) // np.int64(2)
            for i in range(n):
                v = np.int64(x[c, p, i])
                if v > top:
                    v -= q
                for t in range(limbs - 1):
                    d = ((v + half) & mask) - half
                    out[c, p, t, i] = d
                    v = (v - d) >> shift
                if v > half or v < -half:
                    ok = False
                out[c, p, limbs - 1, i] = v
    return ok


@numba.njit(cache=True, nogil=True)
def shift_recombine(  # pragma: no cover - compiled
    z: Any, positions: Any, q: int, bits: int, out: Any
) -> None:
    """out[b, x] = (sum_t 2^(bits t) sum_j X^(p_j) z[b, j, t])[x] mod (X^n + 1, q), in [0, q).

    z: (m, k, limbs, n) float64 holding exact integers, and every sum over j of one
    (b, t, x), in any order, below 2^53 in magnitude (the caller's L1 check), so the
    float sums are exact. Then per coefficient the total T = sum_t acc_t 2^(bits t)
    (|T| < 2^113: bits (limbs - 1) < 60) is taken exactly mod 2^64 in wrapping uint64,
    and est = floor(T / q) is estimated in float64 (below 2^63 for q > 2^50). The float
    errors leave |T - est q| < 2^62 (docs/snni-he.md), so T - est q, read as int64, is
    exact, and is then reduced mod q."""
    m, k, limbs, n = z.shape
    acc = np.empty((limbs, 1, n), dtype=np.float64)
    for b in range(m):
        acc[:, :, :] = 0.0
        for j in range(k):
            pos = positions[j]
            for t in range(limbs):
                # views indexed from 0: no negative-index check, so LLVM vectorises
                dst = acc[t, 0, pos:]
                src = z[b, j, t, : n - pos]
                for x in range(n - pos):  # X^pos: shift up ...
                    dst[x] += src[x]
                dst = acc[t, 0, :pos]
                src = z[b, j, t, n - pos :]
                for x in range(pos):  # ... and wrap with sign -1
                    dst[x] -= src[x]
        recombine_limbs(acc, q, bits, out[b : b + 1])


@numba.njit(cache=True, nogil=True)
def shift_add_chunk(  # pragma: no cover - compiled
    z: Any, positions: Any, x0: int, acc: Any
) -> None:
    """acc[b, (x0 + x + p_j) mod n] += (-1 if it wraps) z[b k + j, x]: one column chunk
    of one limb of the weight product, shifted by X^(p_j) into the members' sums.

    z: (m k, w) float64 for columns x0 .. x0 + w - 1 (w <= n); acc: (m, n). The same
    terms as :func:`shift_recombine` adds, in another order: with the caller's L1 bound
    every partial sum stays below 2^53, so the float sums are exact either way."""
    mk, w = z.shape
    m, n = acc.shape
    k = mk // m
    for b in range(m):
        for j in range(k):
            src = z[b * k + j]
            s = x0 + positions[j]  # where column x0 lands (< 2n)
            if s >= n:  # the whole chunk wraps: sign -1
                dst = acc[b, s - n : s - n + w]
                for x in range(w):
                    dst[x] -= src[x]
            elif s + w <= n:
                dst = acc[b, s : s + w]
                for x in range(w):
                    dst[x] += src[x]
            else:
                first = n - s
                dst = acc[b, s:]
                for x in range(first):
                    dst[x] += src[x]
                dst = acc[b, : w - first]
                for x in range(w - first):
                    dst[x] -= src[first + x]


@numba.njit(cache=True, nogil=True)
def recombine_limbs(  # pragma: no cover - compiled
    acc: Any, q: int, bits: int, out: Any
) -> None:
    """out[b, x] = sum_t acc[t, b, x] 2^(bits t) mod q, in [0, q): the recombination of
    :func:`shift_recombine` on sums kept limb-major, (limbs, m, n)."""
    limbs, m, n = acc.shape
    uq = np.uint64(q)
    qi = np.int64(q)
    inv = 1.0 / float(q)
    scale = float(2.0**bits)
    ub = np.uint64(bits)
    for b in range(m):
        for x in range(n):
            v = acc[limbs - 1, b, x]
            total = v
            wrap = np.uint64(np.int64(v))
            for t in range(limbs - 2, -1, -1):
                v = acc[t, b, x]
                total = total * scale + v
                wrap = (wrap << ub) + np.uint64(np.int64(v))
            est = np.int64(np.floor(total * inv))
            r = np.int64(wrap - np.uint64(est) * uq)
            if r < 0 or r >= qi:
                r = r % qi  # Python semantics: in [0, q)
            out[b, x] = np.uint64(r)
