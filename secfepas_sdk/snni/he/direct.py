"""The edge's plaintext-ciphertext products in the coefficient domain: no kernel NTT.

Who holds what: only the edge runs this. The input ciphertexts (the camera's, plus
the edge's own share x1) and the weights are the edge's to combine; the support
{p_j} of the kernel polynomials is public (the packing). Every kernel polynomial of
a conv layer is K = sum_j w_j X^(p_j), so for output block k

    sum_i ct_i * K_(kern_i) = sum_j X^(p_j) * (sum_i w[kern_i, j] * ct_i)   (mod X^N + 1, q)

one weight matrix product per group of blocks, then k negacyclic shifts. Residues
(< q < 2^60) are centred (|x| < 2^59) and split into balanced limbs of b bits, each
of magnitude at most 2^(b-1), held in float64, so BLAS does the products; every sum,
shifted or not, is a sum of |w| * limb terms over one block's kernels, at most
L1 * 2^(b-1) < 2^53 for L1 the plan's public bound on sum |w| over one output
polynomial (rows above it are refused): exact. The limbs are reduced mod q and
recombined exactly, giving the same polynomial mod q, canonical residues,
as SEAL's NTT path, so the replies are byte-identical (tests/snni/he/test_direct.py):
nothing new is sent and no security argument changes.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from secfepas_sdk.errors import SnniError
from secfepas_sdk.snni.he.bulk import SparseKernels
from secfepas_sdk.snni.he.limbs import (
    EXACT_BITS,
    MIN_LIMB_BITS,
    RESIDUE_BITS,
    limb_bits,
    limb_count,
    recombine,
    split_limbs,
)
from secfepas_sdk.snni.he.params import HeParams
from secfepas_sdk.snni.kernels import checked_kernel

if TYPE_CHECKING:
    from secfepas_sdk.snni.he.direct_outputs import OutputGather

U64 = NDArray[np.uint64]
I64 = NDArray[np.int64]
F64 = NDArray[np.float64]

_MAX_ROWS = 256  # weight rows (blocks x support) per product: Z is <= 256 x 3 x N float64
# Public cost model (docs/snni-he.md, "Products without kernel NTTs"), measured here:
# Effective flops per ms of the whole product (dgemm at ~60 GFLOP/s on one core, plus the
# shifts and the recombination), fitted to ResNet50's 1x1 convs on one core, 2026-12-03:
_FLOPS_PER_MS = 23e6
_FLOPS_PER_MS_NUMPY = 8e6  # without numba (the numpy shifts and recombination)
_SEAL_NTT_MS = 1.2  # SEAL's NTT of one kernel polynomial at q218 (3 working primes)
_SEAL_MULADD_MS = 0.5  # multiply_plain + add_inplace of one term at q218
_KERNEL_MIN_MODULUS = 1 << 50  # the numba kernel's float quotient estimate needs q > 2^50
# The chunked product (DirectProducts._group): the weight product one column chunk of one
# limb at a time, each shifted into the members' limb sums while it is still in cache,
# when those sums fit one core's L2 (2 MiB here): 15-20 % less time on ResNet50's shapes
# than one product of every column followed by the shifts (docs/snni-he.md).
CHUNK_COLUMNS = 1024
_CHUNKED_SUM_BYTES = 2 << 20
BLAS_THREADS = 1  # per process that computes direct products (docs/snni-he.md, "BLAS threads")


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
    flops_per_ms = _FLOPS_PER_MS if accelerated() else _FLOPS_PER_MS_NUMPY
    direct = 2 * support * 2 * primes * limbs * params.poly_degree / flops_per_ms
    seal = _SEAL_MULADD_MS * scale + (0.0 if cached else _SEAL_NTT_MS * scale)
    return direct < seal


def shift_recombine_numpy(z: F64, positions: I64, q: int, bits: int, out: U64) -> None:
    """What the numba kernel computes (:mod:`._direct_kernel`), in numpy: ``out`` (m, N)
    = sum_j X^(p_j) z[:, j] (negacyclic), recombined from its limbs mod q."""
    n = z.shape[-1]
    acc = np.zeros((z.shape[0], z.shape[2], n), dtype=np.float64)
    for j, pos in enumerate(positions.tolist()):
        if pos == 0:
            acc += z[:, j]
            continue
        acc[..., pos:] += z[:, j, :, : n - pos]  # X^pos: shift up ...
        acc[..., :pos] -= z[:, j, :, n - pos :]  # ... and wrap with sign -1
    out[...] = recombine(acc, q, bits)


@checked_kernel
def _chunk_kernels() -> tuple[Any, Any] | None:
    """The compiled chunk shift and limb recombination if they give
    :func:`shift_recombine_numpy`'s result on a small input with wrapping chunks."""
    from secfepas_sdk.snni.he import _direct_kernel

    shift, combine = _direct_kernel.shift_add_chunk, _direct_kernel.recombine_limbs
    rng = np.random.default_rng(19)
    q, bits, n, m, k, width = (1 << 59) + 1, 30, 16, 2, 3, 4
    z = rng.integers(-(1 << 29), 1 << 29, (m, k, 2, n)).astype(np.float64)
    positions = np.array([0, 3, 15], dtype=np.int64)
    acc = np.zeros((2, m, n))
    for t in range(2):
        for x0 in range(0, n, width):
            chunk = np.ascontiguousarray(z[:, :, t, x0 : x0 + width]).reshape(m * k, width)
            shift(chunk, positions, x0, acc[t])
    got, want = np.empty((m, n), np.uint64), np.empty((m, n), np.uint64)
    combine(acc, q, bits, got)
    shift_recombine_numpy(z, positions, q, bits, want)
    return (shift, combine) if np.array_equal(got, want) else None


@checked_kernel
def _split_kernel() -> Any:
    """The compiled limb split if it gives :func:`split_limbs`'s limbs on residues at
    both ends of the centred range, for two primes and a 3-limb width."""
    from secfepas_sdk.snni.he import _direct_kernel

    kernel = _direct_kernel.split_limbs_into
    rng = np.random.default_rng(23)
    moduli = [(1 << 59) + 21, (1 << 58) + 27]
    bits, n = 20, 16
    x = np.stack([rng.integers(0, q, (2, n), dtype=np.uint64) for q in moduli], axis=1)
    x[0, :, :4] = [[0, 1, (q - 1) // 2, (q + 1) // 2] for q in moduli]
    got = np.empty((2, 2, limb_count(bits), n), dtype=np.float64)
    ok = kernel(x, np.asarray(moduli, dtype=np.uint64), bits, got)
    want = np.stack(
        [split_limbs(x[:, p], q, bits, limb_count(bits)) for p, q in enumerate(moduli)], axis=1
    )
    return kernel if ok and np.array_equal(got, want) else None


@checked_kernel
def _shift_kernel() -> Any:
    """The compiled shift-and-recombine kernel if it matches numpy on a small input
    (numba is in the edge extra), else None."""
    from secfepas_sdk.snni.he import _direct_kernel

    kernel = _direct_kernel.shift_recombine
    rng = np.random.default_rng(17)
    q, bits, n = (1 << 59) + 1, 30, 8
    z = rng.integers(-(1 << 29), 1 << 29, (2, 3, 2, n)).astype(np.float64)
    positions = np.array([0, 3, 7], dtype=np.int64)
    got, want = np.empty((2, n), np.uint64), np.empty((2, n), np.uint64)
    kernel(z, positions, q, bits, got)
    shift_recombine_numpy(z, positions, q, bits, want)
    return kernel if np.array_equal(got, want) else None


def accelerated() -> bool:
    """Whether the compiled shift-and-recombine kernel is there (numpy otherwise)."""
    return _shift_kernel() is not None


def warm_up() -> None:
    """Load (and if needed compile) the kernel now, not in the middle of a layer call:
    its probe runs it once."""
    _shift_kernel()
    _chunk_kernels()
    _split_kernel()


@functools.cache
def _blas_controller() -> Any:
    """threadpoolctl's controller (in the edge extra), made once; None without it."""
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:
        return None
    return ThreadpoolController()


def blas_limit(threads: int) -> contextlib.AbstractContextManager[Any]:
    """Hold BLAS to ``threads`` threads in this process while the direct path computes
    (threadpoolctl, in the edge extra; 0, or without it: the library's default). The
    edge's parallelism is its block processes and sessions: OpenBLAS threads on top of
    them only contend, and idle ones spin (docs/snni-he.md, "BLAS threads")."""
    controller = _blas_controller() if threads > 0 else None
    if controller is None:
        return contextlib.nullcontext()
    limiter: contextlib.AbstractContextManager[Any] = controller.limit(
        limits=threads, user_api="blas"
    )
    return limiter


class InputLimbs:
    """One layer call's input ciphertexts as the direct path reads them: each split once,
    as it arrives, into float64 limbs, (2, primes, inputs, limbs, N), the inputs in
    ascending order, so the inputs of a group of blocks are mostly one contiguous slice
    that BLAS reads in place. The edge's; dropped with the call."""

    def __init__(self, needed: Iterable[int], moduli: list[int], bits: int, n: int) -> None:
        if not MIN_LIMB_BITS <= bits <= RESIDUE_BITS:
            raise SnniError(f"bad limb width {bits}")
        self.row = {i: r for r, i in enumerate(sorted(needed))}
        self.moduli = list(moduli)
        self._moduli = np.asarray(moduli, dtype=np.uint64)
        self._split = _split_kernel()
        self.bits, self.limbs, self.n = bits, limb_count(bits), n
        self.data = np.empty((2, len(moduli), len(self.row), self.limbs, n), dtype=np.float64)
        self._filled = np.zeros(len(self.row), dtype=bool)

    @classmethod
    def of(cls, cts: dict[int, U64], moduli: list[int], bits: int, n: int) -> InputLimbs:
        """From coefficient-form inputs ``cts[i]``, (2, primes, N) each."""
        out = cls(cts, moduli, bits, n)
        for i, polys in cts.items():
            out.add(i, polys)
        return out

    def add(self, i: int, polys: U64) -> None:
        """Input i in coefficient form, (2, primes, N), residues below 2^60."""
        r = self.row.get(i)
        if r is None or polys.shape != (2, self.data.shape[1], self.n):
            raise SnniError("an input the direct path does not expect")
        if self._split is not None:
            if not self._split(polys, self._moduli, self.bits, self.data[:, :, r]):
                raise SnniError("a residue does not fit its balanced limbs")
        else:
            for p, q in enumerate(self.moduli):
                self.data[:, p, r] = split_limbs(polys[:, p], q, self.bits, self.limbs)
        self._filled[r] = True

    def rows(self, inputs: tuple[int, ...]) -> slice | I64:
        """Where ``inputs`` (ascending) sit: a slice when they are consecutive."""
        try:
            rows = [self.row[i] for i in inputs]
        except KeyError:
            raise SnniError("the direct path lacks an input") from None
        if not self._filled[rows].all():
            raise SnniError("the direct path lacks an input")
        if rows == list(range(rows[0], rows[0] + len(rows))):
            return slice(rows[0], rows[0] + len(rows))
        return np.asarray(rows, dtype=np.int64)


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
        *,
        blas_threads: int = BLAS_THREADS,
        chunk: int = CHUNK_COLUMNS,
        c0_at: OutputGather | None = None,
    ) -> None:
        """``c0_at``: compute c0 only at its output coefficients (trimmed replies;
        :mod:`.direct_outputs`), leaving the others 0."""
        if not MIN_LIMB_BITS <= bits <= RESIDUE_BITS:
            raise SnniError(f"bad limb width {bits}")
        if chunk < 1 or n % min(chunk, n):
            raise SnniError(f"column chunks of {chunk} do not tile N = {n}")
        self._chunk = min(chunk, n)
        self._sparse, self._terms, self._moduli = sparse, terms, moduli
        self._blas_threads = blas_threads
        self._c0_at = c0_at
        self._positions = np.ascontiguousarray(sparse.positions, dtype=np.int64)
        self._bits, self._limbs, self._n = bits, limb_count(bits), n
        self._limit = ((1 << EXACT_BITS) - 1) >> (bits - 1)  # L1 * 2^(b-1) < 2^53: L1 <= this
        pos = sparse.positions
        if int(pos.min()) < 0 or int(pos.max()) >= n:
            raise SnniError("kernel support outside the polynomial")

    def products(self, blocks: list[int], cts: InputLimbs) -> Iterator[tuple[int, U64]]:
        """(k, product of block k) for ``blocks`` in order; ``cts`` holds the inputs the
        blocks read, split into limbs of this layer's width."""
        if (cts.bits, cts.n, cts.moduli) != (self._bits, self._n, self._moduli):
            raise SnniError("the direct path's inputs have the wrong shape")
        support = self._sparse.positions.size
        step = max(1, _MAX_ROWS // support)
        fast = min(self._moduli) > _KERNEL_MIN_MODULUS  # the kernels' quotient estimate
        kernel = _shift_kernel() if fast else None
        chunks = _chunk_kernels() if fast else None
        # one buffer for every weight product of the call (no fresh pages per product);
        # a group with fewer rows than the largest has sums that fit whenever its do
        rows = min(step, len(blocks)) * support
        chunked = chunks is not None and self._sums_fit(rows)
        buf = np.empty(rows * (self._chunk if chunked else self._limbs * self._n))
        c0 = self._gathered_c0(blocks, cts)
        for start in range(0, len(blocks), step):
            chunk = blocks[start : start + step]
            done: dict[int, U64] = {}
            with blas_limit(self._blas_threads):  # not held across the yields below
                for inputs, members in self._by_inputs(chunk).items():
                    got = self._group(members, inputs, cts, buf, kernel, chunks, c0)
                    done.update(zip(members, got, strict=True))
            for k in chunk:
                yield k, done.pop(k)

    def _gathered_c0(self, blocks: list[int], cts: InputLimbs) -> dict[int, U64]:
        """Block -> its c0 at the output coefficients, (primes, |S|), when gathered
        (``c0_at``): every block reading one set of inputs in one GEMM per prime, so
        the inputs are gathered once, not once per group of the full products."""
        if self._c0_at is None:
            return {}
        out: dict[int, U64] = {}
        for inputs, members in self._by_inputs(blocks).items():
            values = np.zeros(
                (len(members), len(self._moduli), self._c0_at.outputs.size), np.uint64
            )
            if inputs:
                wt, rows = self._weights(members, inputs), cts.rows(inputs)
                with blas_limit(self._blas_threads):
                    for p, q in enumerate(self._moduli):
                        xs = cts.data[0, p, rows]
                        values[:, p] = self._c0_at.product(wt, xs, q, self._bits)
            out.update(zip(members, values, strict=True))
        return out

    def _by_inputs(self, blocks: list[int]) -> dict[tuple[int, ...], list[int]]:
        """The blocks grouped by the (sorted) set of inputs their terms read."""
        sets: dict[tuple[int, ...], list[int]] = {}
        for k in blocks:
            sets.setdefault(tuple(sorted({i for i, _ in self._terms[k]})), []).append(k)
        return sets

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
            if int(l1.max()) > self._limit:
                raise SnniError("kernel weights exceed the bound the direct path is exact for")
            np.add.at(w3, (np.asarray(rows_of), np.asarray(cols)), rows)
        return np.ascontiguousarray(w3.transpose(0, 2, 1), dtype=np.float64).reshape(
            len(members) * support, len(inputs)
        )

    def _sums_fit(self, rows: int) -> bool:
        """Whether the limb sums of a group of ``rows`` weight rows fit the cache, so that
        the group takes the chunked product (given its kernels)."""
        members = max(1, rows // self._sparse.positions.size)
        return members * self._limbs * self._n * 8 <= _CHUNKED_SUM_BYTES

    def _group(
        self,
        members: list[int],
        inputs: tuple[int, ...],
        cts: InputLimbs,
        buf: F64,
        kernel: Any,
        chunks: tuple[Any, Any] | None,
        c0: dict[int, U64],
    ) -> list[U64]:
        """The members' products; ``c0``: their gathered c0 (``c0_at``), taken from it."""
        n, limbs = self._n, self._limbs
        support = self._sparse.positions.size
        # (2, primes, blocks, N): every (component, prime) slice the kernel writes is
        # C-contiguous, whatever the group's size (one compiled specialisation)
        out = np.zeros((2, len(self._moduli), len(members), n), dtype=np.uint64)
        if not inputs:
            return [out[:, :, b] for b in range(len(members))]
        wt = self._weights(members, inputs)
        rows = cts.rows(inputs)
        positions = self._positions
        if chunks is not None and not self._sums_fit(wt.shape[0]):
            chunks = None
        acc = np.empty((limbs, len(members), n) if chunks is not None else (0, 0, 0))
        components: tuple[int, ...] = (0, 1)
        if self._c0_at is not None:  # c0 was gathered at the outputs: only c1 is whole
            for b, k in enumerate(members):
                out[0, :, b][:, self._c0_at.outputs] = c0.pop(k)
            components = (1,)
        for c in components:
            for p, q in enumerate(self._moduli):
                xs = cts.data[c, p, rows]  # (inputs, limbs, N): a view for a slice
                if chunks is not None:
                    self._chunked_product(wt, xs, acc, buf, chunks[0])
                    chunks[1](acc, q, self._bits, out[c, p])
                    continue
                z = buf[: wt.shape[0] * limbs * n].reshape(wt.shape[0], limbs * n)
                np.matmul(wt, xs.reshape(len(inputs), limbs * n), out=z)
                z4 = z.reshape(len(members), support, limbs, n)
                if kernel is not None:
                    kernel(z4, positions, q, self._bits, out[c, p])
                else:
                    shift_recombine_numpy(z4, positions, q, self._bits, out[c, p])
        return [out[:, :, b] for b in range(len(members))]

    def _chunked_product(self, wt: F64, xs: F64, acc: F64, buf: F64, shift: Any) -> None:
        """acc (limbs, members, N) = the members' shifted sums, one column chunk of one
        limb at a time: each chunk of W X is shifted into acc while it is in cache."""
        width, positions = self._chunk, self._positions
        acc[...] = 0.0
        z = buf[: wt.shape[0] * width].reshape(wt.shape[0], width)
        for t in range(self._limbs):
            for x0 in range(0, self._n, width):
                np.matmul(wt, xs[:, t, x0 : x0 + width], out=z)  # BLAS reads the strided view
                shift(z, positions, x0, acc[t])
