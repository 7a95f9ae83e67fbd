"""The edge's plaintext-ciphertext products in the coefficient domain: no kernel NTT.

Who holds what: only the edge runs this. The input ciphertexts (the camera's, plus
the edge's own share x1) and the weights are the edge's to combine; the support
{p_j} of the kernel polynomials is public (the packing). Every kernel polynomial of
a conv layer is K = sum_j w_j X^(p_j), so for output block k

    sum_i ct_i * K_(kern_i) = sum_j X^(p_j) * (sum_i w[kern_i, j] * ct_i)   (mod X^N + 1, q)

one weight matrix product per group of blocks, then k negacyclic shifts. Residues
(< 2^60) are split into limbs of b bits held in float64, so BLAS does the products;
every sum, shifted or not, is a sum of |w| * limb terms over one block's kernels, at
most L1 * (2^b - 1) < 2^53 for L1 the plan's public bound on sum |w| over one output
polynomial (rows above it are refused): exact. The limbs are reduced mod q and
recombined exactly in uint64, giving the same polynomial mod q, canonical residues,
as SEAL's NTT path, so the replies are byte-identical (tests/snni/he/test_direct.py):
nothing new is sent and no security argument changes.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
from numpy.typing import NDArray

from secfepas_sdk.errors import SnniError
from secfepas_sdk.snni.he.bulk import SparseKernels
from secfepas_sdk.snni.he.params import HeParams

U64 = NDArray[np.uint64]
I64 = NDArray[np.int64]
F64 = NDArray[np.float64]

EXACT_BITS = 53  # float64 holds every integer of magnitude below 2^53
MIN_LIMB_BITS = 8
RESIDUE_BITS = 60  # every working prime is below 2^60
_SHIFT_STEP = 4  # (r << 4) stays below 2^64 for r < q < 2^60
_MAX_ROWS = 256  # weight rows (blocks x support) per product: Z is <= 256 x 3 x N float64
# Public cost model (docs/snni-he.md, "Products without kernel NTTs"), measured here:
_FLOPS_PER_MS = 8e6  # numpy's OpenBLAS dgemm, one core
_SEAL_NTT_MS = 1.2  # SEAL's NTT of one kernel polynomial at q218 (3 working primes)
_SEAL_MULADD_MS = 0.5  # multiply_plain + add_inplace of one term at q218


def limb_bits(l1_bound: float) -> int:
    """Limb width b with L1 * (2^b - 1) < 2^53 for the plan's public bound L1."""
    need = math.ceil(math.log2(max(l1_bound, 1.0) + 1.0))
    return min(EXACT_BITS - 1 - need, RESIDUE_BITS)


def limb_count(bits: int) -> int:
    return -(-RESIDUE_BITS // bits)


def worth_it(support: int, l1_bound: float, params: HeParams, *, cached: bool) -> bool:
    """Does the direct path beat SEAL's per term (input, kernel)? Public data only:
    the support size, the plan's L1 bound, the parameter set, whether the kernels
    are cached in NTT form."""
    bits = limb_bits(l1_bound)
    if bits < MIN_LIMB_BITS:
        return False
    primes = len(params.coeff_bits) - 1
    scale = primes / 3
    limbs = limb_count(bits)
    # per term: the weight product (2 flops per weight, per component, prime, limb, slot)
    direct = 2 * support * 2 * primes * limbs * params.poly_degree / _FLOPS_PER_MS
    seal = _SEAL_MULADD_MS * scale + (0.0 if cached else _SEAL_NTT_MS * scale)
    return direct < seal


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


def split_limbs(x: U64, bits: int, limbs: int) -> F64:
    """(..., N) residues as (..., limbs, N) float64 limbs of ``bits`` bits."""
    mask = np.uint64((1 << bits) - 1)
    out = np.empty((*x.shape[:-1], limbs, x.shape[-1]), dtype=np.float64)
    for t in range(limbs):
        out[..., t, :] = (x >> np.uint64(bits * t)) & mask
    return out


class DirectProducts:
    """sum_i ct_i * K_(kern_i) of output blocks in coefficient form, (2, primes, N)
    each, for one layer part's blocks. The edge's; built per layer call."""

    def __init__(
        self,
        sparse: SparseKernels,
        terms: list[list[tuple[int, int]]],
        moduli: list[int],
        bits: int,
        n: int,
    ) -> None:
        if not MIN_LIMB_BITS <= bits <= RESIDUE_BITS:
            raise SnniError(f"bad limb width {bits}")
        self._sparse, self._terms, self._moduli = sparse, terms, moduli
        self._bits, self._limbs, self._n = bits, limb_count(bits), n
        self._limit = ((1 << EXACT_BITS) - 1) // ((1 << bits) - 1)  # L1 must stay below
        pos = sparse.positions
        if int(pos.min()) < 0 or int(pos.max()) >= n:
            raise SnniError("kernel support outside the polynomial")

    def products(self, blocks: list[int], cts: dict[int, U64]) -> Iterator[tuple[int, U64]]:
        """(k, product of block k) for ``blocks`` in order; ``cts[i]`` is input i in
        coefficient form, (2, primes, N)."""
        step = max(1, _MAX_ROWS // self._sparse.positions.size)
        for start in range(0, len(blocks), step):
            chunk = blocks[start : start + step]
            done: dict[int, U64] = {}
            groups: dict[tuple[int, ...], list[int]] = {}
            for k in chunk:
                groups.setdefault(tuple(sorted({i for i, _ in self._terms[k]})), []).append(k)
            for inputs, members in groups.items():
                done.update(zip(members, self._group(members, inputs, cts), strict=True))
            for k in chunk:
                yield k, done.pop(k)

    def _weights(self, members: list[int], inputs: tuple[int, ...]) -> F64:
        """(blocks x support, inputs) weights of the group's blocks; the L1 check."""
        support = self._sparse.positions.size
        col = {i: c for c, i in enumerate(inputs)}
        rows_of, cols, kerns = [], [], []
        for b, k in enumerate(members):
            for i, kern in self._terms[k]:
                rows_of.append(b)
                cols.append(col[i])
                kerns.append(kern)
        w3 = np.zeros((len(members), len(inputs), support), dtype=np.int64)
        if kerns:
            rows = self._sparse.rows(kerns)
            if rows.shape != (len(kerns), support):
                raise SnniError("kernel rows do not match their support")
            l1 = np.zeros(len(members), dtype=np.int64)
            np.add.at(l1, np.asarray(rows_of), np.abs(rows).sum(axis=1))
            if int(l1.max()) >= self._limit:
                raise SnniError("kernel weights exceed the bound the direct path is exact for")
            np.add.at(w3, (np.asarray(rows_of), np.asarray(cols)), rows)
        return np.ascontiguousarray(w3.transpose(0, 2, 1), dtype=np.float64).reshape(
            len(members) * support, len(inputs)
        )

    def _group(self, members: list[int], inputs: tuple[int, ...], cts: dict[int, U64]) -> list[U64]:
        n, limbs = self._n, self._limbs
        support = self._sparse.positions.size
        out = np.zeros((len(members), 2, len(self._moduli), n), dtype=np.uint64)
        if not inputs:
            return list(out)
        wt = self._weights(members, inputs)
        x = np.stack([cts[i] for i in inputs])  # (inputs, 2, primes, N)
        for c in range(2):
            for p, q in enumerate(self._moduli):
                xs = split_limbs(x[:, c, p], self._bits, limbs).reshape(len(inputs), -1)
                z = (wt @ xs).reshape(len(members), support, limbs, n)
                acc = np.zeros((len(members), limbs, n), dtype=np.float64)
                for j, pos in enumerate(self._sparse.positions.tolist()):
                    if pos == 0:
                        acc += z[:, j]
                        continue
                    acc[..., pos:] += z[:, j, :, : n - pos]  # X^pos: shift up ...
                    acc[..., :pos] -= z[:, j, :, n - pos :]  # ... and wrap with sign -1
                out[:, c, p] = recombine(acc, q, self._bits)
        return list(out)
