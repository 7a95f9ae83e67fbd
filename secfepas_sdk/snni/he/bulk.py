"""Kernel plaintexts in NTT form in bulk, as one small integer matrix product.

Who holds what: only the edge runs this; the weights are its own and the basis is
public. The NTT is linear, and SEAL's plaintext NTT lifts a signed coefficient w
to w mod q_i before it transforms, so a kernel polynomial K = sum_j w_j X^(p_j)
has NTT(K) = sum_j w_j NTT(X^(p_j)) mod q_i at every working prime. All the
kernel polynomials of a conv layer share one public support {p_j} (the packing
puts every block at the same places), so the NTT forms of a block's kernels are
W (m x k, the weights) @ V (k x N, the NTT of each monomial, from SEAL itself),
one exact float64 (BLAS) product per 20-bit limb of V, reduced mod q_i: the same
canonical residues, byte for byte, as SEAL's ``transform_to_ntt`` of each
polynomial (tests/snni/he/test_bulk.py). It costs about k multiply-adds per
slot instead of one SEAL NTT per polynomial, so it pays when k is small (1x1
convs); :func:`worth_it` decides from the public geometry alone.

Exactness: each limb product is at most L1 * 2^20 < 2^53, with L1 = sum_j |w_j| of
one kernel polynomial, so the path needs L1 < 2^33 (:data:`MAX_ROW_L1`). Whether a
layer takes it depends on the plan's public L1 bound only, and a kernel row
above the bound (weights that do not match their plan) is refused.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from secfepas_sdk.errors import SnniError
from secfepas_sdk.snni.he import sealio
from secfepas_sdk.snni.kernels import checked_kernel

if TYPE_CHECKING:
    from secfepas_sdk.snni.he.engine import _Seal
    from secfepas_sdk.snni.he.params import HeParams

U64 = NDArray[np.uint64]
I64 = NDArray[np.int64]

LIMB_BITS = 20
MAX_ROW_L1 = 1 << 33  # sum_j |w_j| * 2^20 < 2^53: every float64 limb product exact
_MIN_MODULUS_BITS = 50  # the float quotient estimate needs q >> 2^41
# Modelled cost per kernel polynomial, relative to SEAL's path (coefficients in, lift,
# one NTT per prime) = 1, measured with tools on this machine (docs/snni-he.md, "Kernel
# NTTs in bulk"): the bulk path's fixed part (the reduction mod q and the load of the
# NTT-form bytes through the memfd) alone costs about as much, so no layer takes it yet.
_COST_SEAL = 1.0
_COST_PER_POSITION = 0.02
_COST_FIXED = 0.95


@dataclass(frozen=True, slots=True)
class SparseKernels:
    """A layer's kernel polynomials on one public support: kernel i is
    sum_j rows([i])[0, j] X^(positions[j]). ``rows`` gives the signed weights of
    several kernels at once, (len(ids), k); only the edge holds it."""

    positions: I64
    rows: Callable[[list[int]], I64]

    def __post_init__(self) -> None:
        if self.positions.ndim != 1 or self.positions.size < 1:
            raise SnniError("a kernel support needs at least one position")


@checked_kernel
def _kernel() -> Any:
    """The compiled limb reduction (numba is the optional ``fast`` extra) if it gives
    Python's integers mod q on limbs at +-(2^53 - 1) and at random."""
    from secfepas_sdk.snni.he import _bulk_kernel

    kernel = _bulk_kernel.reduce_limbs
    rng = np.random.default_rng(29)
    q, top = (1 << 59) + 1, float((1 << 53) - 1)
    limbs = rng.uniform(-top, top, size=(3, 2, 8)).round()
    limbs[:, 0, 0], limbs[:, 0, 1] = top, -top
    got = np.empty((2, 8), dtype=np.uint64)
    kernel(limbs[0], limbs[1], limbs[2], q, LIMB_BITS, got)
    want = [
        [sum(int(limbs[t, r, x]) << (LIMB_BITS * t) for t in range(3)) % q for x in range(8)]
        for r in range(2)
    ]
    return kernel if got.tolist() == want else None


def accelerated() -> bool:
    """Whether the compiled kernel is there (without numba every kernel goes through SEAL)."""
    return _kernel() is not None


def warm_up() -> None:
    """Load (and if needed compile) the kernel now, not in the middle of a layer call:
    its probe runs it once."""
    _kernel()


def worth_it(support: int, l1_bound: float, params: HeParams) -> bool:
    """Does the bulk path beat SEAL's for kernels on ``support`` positions? From public
    data only (the geometry, the plan's L1 bound, the parameter set)."""
    return (
        accelerated()
        and l1_bound < MAX_ROW_L1
        and min(params.coeff_bits[:-1]) > _MIN_MODULUS_BITS
        and _COST_PER_POSITION * support + _COST_FIXED < _COST_SEAL
    )


def kernel_cost_ms(support: int | None, l1_bound: float, params: HeParams) -> float:
    """Modelled ms to NTT one uncached kernel polynomial (``support`` None: not sparse),
    which the edge's cache policy spends its bytes on, dearest first."""
    if support is not None and worth_it(support, l1_bound, params):
        return _COST_PER_POSITION * support + _COST_FIXED
    return _COST_SEAL


class BulkNtt:
    """The NTT-form plaintexts of kernels on one support, at the working level.

    Built per layer call (the basis is k SEAL NTTs of monomials: public, and small
    next to the n_kernels NTTs it replaces), so no call leaves anything behind."""

    def __init__(self, s: _Seal, sparse: SparseKernels) -> None:
        self._s = s
        self._sparse = sparse
        k = sparse.positions.size
        limbs = len(s.first_moduli)
        basis = np.empty((limbs, k, s.n), dtype=np.uint64)
        unit = np.zeros(s.n, dtype=np.uint64)
        for j, pos in enumerate(sparse.positions):
            unit[pos] = 1
            pt = s.plaintext(unit)
            unit[pos] = 0
            s.evaluator.transform_to_ntt_inplace(pt, s.first)  # SEAL's NTT of X^pos
            basis[:, j] = sealio.plaintext_coeffs(s.scratch.save(pt)).reshape(limbs, s.n)
        mask = np.uint64((1 << LIMB_BITS) - 1)
        # (primes, 3, k, N): V's three 20-bit limbs, as float64 for BLAS
        self._limbs = np.stack(
            [((basis >> np.uint64(LIMB_BITS * t)) & mask).astype(np.float64) for t in range(3)],
            axis=1,
        )
        self._moduli = [int(q) for q in s.first_moduli]
        self._parms = sealio.parms_id_bytes(s.first)

    def values(self, rows: I64) -> U64:
        """(m, limbs, N) NTT-form residues of the kernels whose weights are ``rows``
        (m, k): the edge's."""
        rows = np.ascontiguousarray(rows, dtype=np.int64)
        if rows.ndim != 2 or rows.shape[1] != self._sparse.positions.size:
            raise SnniError("kernel rows do not match their support")
        if rows.size and int(np.abs(rows).sum(axis=1).max()) >= MAX_ROW_L1:
            raise SnniError("kernel weights exceed the bound the bulk NTT is exact for")
        weights = rows.astype(np.float64)
        out = np.empty((rows.shape[0], len(self._moduli), self._s.n), dtype=np.uint64)
        part = np.empty((rows.shape[0], self._s.n), dtype=np.uint64)
        kernel = _kernel()
        if kernel is None:
            raise SnniError("the bulk NTT needs its compiled kernel")
        for i, q in enumerate(self._moduli):
            a0, a1, a2 = (weights @ self._limbs[i, t] for t in range(3))
            kernel(a0, a1, a2, q, LIMB_BITS, part)
            out[:, i] = part
        return out

    def plains(self, ids: list[int]) -> list[Any]:
        """SEAL NTT-form plaintexts of kernels ``ids``; None for an all-zero kernel
        (SEAL refuses a product with zero; the same skip as the per-kernel path)."""
        s = self._s
        rows = self._sparse.rows(ids)
        if rows.shape != (len(ids), self._sparse.positions.size):
            raise SnniError("kernel rows do not match their support")
        out: list[Any] = []
        zeros = np.logical_not(rows.any(axis=1)).tolist()
        for zero, v in zip(zeros, self.values(rows), strict=True):
            if zero:
                out.append(None)
                continue
            pt = s.seal.Plaintext()
            s.scratch.load(pt, s.context, sealio.ntt_plaintext_bytes(v, parms_id=self._parms))
            out.append(pt)
        return out
