"""Primal LPN with regular noise for Ferret: parameter sets and the local-code encoding.

Ferret (Yang, Weng, Lan, Zhang, Wang; CCS 2020) turns k base COTs and a t-point
regular-noise COT of length n into n COTs: output j is
    x_j = e_j xor XOR_{r < D} u[idx(j, r)]   (bits, receiver)
    z_j = w_j xor XOR_{r < D} M[idx(j, r)]   (blocks, receiver)
    y_j = v_j xor XOR_{r < D} K[idx(j, r)]   (blocks, sender)
with each column of the public k x n matrix holding D = 10 ones at pseudo-random
rows. Linearity keeps z = y xor x * Delta; x is pseudo-random if (u A + e) is, which
is the regular-noise LPN assumption (e has one 1 in each of t blocks of n / t).

The index of output j, row r is floor(k * w / 2^32) for the 32-bit word w at
position D*j + r of an AES-128-CTR stream under a public key derived from the
iteration (the matrix is public; only its independence from the secrets matters).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from numpy.typing import NDArray

from secfepas_sdk.errors import SnniError
from secfepas_sdk.snni.kernels import checked_kernel
from secfepas_sdk.snni.ot.aesblocks import blocks

U8 = NDArray[np.uint8]
U32 = NDArray[np.uint32]
U64 = NDArray[np.uint64]

D = 10  # ones per column of the LPN matrix (Ferret's local linear code)
_CHUNK = 1 << 14  # output rows per index chunk: 655 kB of indices, kept in cache
INDEX_KEY = bytes.fromhex("74e7cdb697b59c85a289885ecbdc724e")  # SHA-256("secfepas lpn index")


@dataclass(frozen=True, slots=True, kw_only=True)
class LpnParams:
    """One Ferret iteration: n outputs from k base COTs plus t trees of 2^log_leaves.

    ``reserve`` = k + t * log_leaves base COTs that the next iteration consumes."""

    name: str
    n: int
    k: int
    t: int
    log_leaves: int

    def __post_init__(self) -> None:
        if self.n != self.t << self.log_leaves or not 0 < self.reserve < self.n:
            raise SnniError(f"inconsistent LPN parameters {self.name}")

    @property
    def reserve(self) -> int:
        return self.k + self.t * self.log_leaves

    @property
    def spcot_message_bytes(self) -> int:
        """The sender's one message: two masked sums per tree level, a leaf sum per tree."""
        return 16 * self.t * (2 * self.log_leaves + 1)


# Ferret's regular-noise primal-LPN sets as its authors ship them in emp-ot (the
# paper's Table 2 analysis; >= 128-bit computational, see docs/snni-core.md).
MAIN = LpnParams(name="ferret-main", n=10_608_640, k=589_824, t=1_295, log_leaves=13)
SETUP = LpnParams(name="ferret-setup", n=649_728, k=36_288, t=1_269, log_leaves=9)


def _index_words(key: bytes, start: int, rows: int, out: U8 | None = None) -> U32:
    """The D 32-bit words of rows start .. start + rows - 1 (AES-CTR at the right block),
    written into ``out`` (at least rows * 4D + 31 bytes) when given."""
    nbytes = rows * D * 4
    first_block, skip = divmod(start * D * 4, 16)
    nonce = first_block.to_bytes(16, "big")
    enc = Cipher(algorithms.AES(key), modes.CTR(nonce)).encryptor()
    size = skip + nbytes + 16
    if out is None or out.size < size + 15:
        out = np.empty(size + 15, dtype=np.uint8)
    zeros = _zeros(size)
    enc.update_into(zeros.data, out[: size + 15].data)
    return out[skip : skip + nbytes].view(np.uint32).reshape(rows, D)


_ZEROS: list[U8] = []


def _zeros(size: int) -> U8:
    """A read-only zero buffer of at least ``size`` bytes (the CTR plaintext)."""
    if not _ZEROS or _ZEROS[0].size < size:
        z = np.zeros(max(size, 16 * D * _CHUNK // 4 + 64), dtype=np.uint8)
        z.setflags(write=False)
        _ZEROS[:] = [z]
    return _ZEROS[0][:size]


def matrix_key(iteration: int, domain: int) -> bytes:
    """The public per-iteration AES key of the index stream."""
    tag = np.array([iteration, domain], dtype=np.uint64).view(np.uint8)
    return bytes(np.frombuffer(INDEX_KEY, dtype=np.uint8) ^ tag)


def encode_numpy(
    base: U64,
    out: U64,
    idx: U32,
    base_bits: U8 | None,
    out_bits: U8 | None,
    start: int,
    assign: bool = False,
) -> None:
    """numpy fallback of the encode kernel (about 30x slower)."""
    k = np.uint64(base.shape[0])
    rows = (idx.astype(np.uint64) * k) >> np.uint64(32)
    stop = start + idx.shape[0]
    if assign:
        out[start:stop] = 0
        if out_bits is not None:
            out_bits[start:stop] = 0
    for r in range(D):
        out[start:stop] ^= base[rows[:, r]]
        if base_bits is not None and out_bits is not None:
            out_bits[start:stop] ^= base_bits[rows[:, r]]


def encode_bits_numpy(bitset_bits: U8, k: int, out_bits: U8, idx: U32, start: int) -> None:
    """numpy fallback of the bits-only kernel (``bitset_bits``: the k bits unpacked)."""
    rows = (idx.astype(np.uint64) * np.uint64(k)) >> np.uint64(32)
    out_bits[start : start + idx.shape[0]] = np.bitwise_xor.reduce(bitset_bits[rows], axis=1)


def bitset_words(bits: U8) -> U32:
    """The bits packed little-endian into 32-bit words (zero padded): bit i is bit
    i & 31 of word i >> 5 (what the bits-only kernel reads)."""
    packed = np.packbits(bits & np.uint8(1), bitorder="little")
    words = np.zeros(-(-packed.size // 4), dtype=np.uint32)
    words.view(np.uint8)[: packed.size] = packed
    return words


@checked_kernel
def _bits_kernel() -> Callable[..., None] | None:
    """The numba bits-only kernel if it matches numpy on a small input."""
    from secfepas_sdk.snni.ot._lpn_kernel import encode_bits

    bits = np.random.default_rng(5).integers(0, 2, 300).astype(np.uint8)
    idx = _index_words(matrix_key(2, 1), 9, 40)
    got, want = np.zeros(40, np.uint8), np.ones(40, np.uint8)
    encode_bits(bitset_words(bits), got, idx, 0, 300)
    encode_bits_numpy(bits, 300, want, idx, 0)
    return encode_bits if np.array_equal(got, want) else None


def _kernels() -> tuple[Callable[..., None], ...]:
    """The numba kernels, best first (none without numba)."""
    try:
        from secfepas_sdk.snni.ot import _lpn_kernel
    except ImportError:
        return ()
    return (_lpn_kernel.encode_prefetch, _lpn_kernel.encode_plain)


_EMPTY = np.zeros(0, dtype=np.uint8)
_EMPTY32 = np.zeros(0, dtype=np.uint32)


def _self_test(kernel: Callable[..., None]) -> bool:
    """Compile the kernel and check it against numpy on a small input."""
    rng = np.random.default_rng(7)
    base = rng.integers(0, 1 << 63, (300, 2), dtype=np.uint64)
    bits = rng.integers(0, 2, 300).astype(np.uint8)
    idx = _index_words(matrix_key(3, 1), 5, 40)
    got, want = np.zeros((40, 2), np.uint64), np.zeros((40, 2), np.uint64)
    got_b, want_b = np.zeros(40, np.uint8), np.zeros(40, np.uint8)
    packed = np.packbits(bits, bitorder="little")
    kernel(base, got, idx, packed, got_b, 0, False)
    encode_numpy(base, want, idx, bits, want_b, 0)
    ok = np.array_equal(got, want) and np.array_equal(got_b, want_b)
    kernel(base, got, idx, packed, got_b, 0, True)
    return bool(ok and np.array_equal(got, want) and np.array_equal(got_b, want_b))


@checked_kernel
def _block_kernel() -> Callable[..., None] | None:
    """The first block kernel that compiles and gives numpy's words (the prefetching one,
    unless this LLVM lacks the hint), or None: the numpy fallback then."""
    for kernel in _kernels():
        try:
            if _self_test(kernel):
                return kernel
        except Exception:  # noqa: S112 - e.g. an LLVM without the prefetch hint
            continue
    return None


def accelerated() -> bool:
    """Whether a numba kernel is available (otherwise the numpy fallback runs)."""
    return _block_kernel() is not None


class Encoder:
    """One party's LPN encoding in one iteration: out[j] ^= XOR_r base[idx(j, r)].

    ``base`` are its k base COT blocks (the sender's K, the receiver's M: secret, the
    party's own) and ``base_bits`` the receiver's k base choice bits u. The table is
    copied once into a huge-page-aligned buffer (and the bits into a bit set that
    fits the cache), so that the iteration's tree groups reuse it."""

    __slots__ = (
        "_bits", "_bits_kernel", "_bitset", "_bitset32", "_idx", "_kernel", "_key", "_table",
    )  # fmt: skip

    def __init__(
        self, key: bytes, base: U8, base_bits: U8 | None = None, *, use_numba: bool = True
    ) -> None:
        if base.ndim != 2 or base.shape[1] != 16:
            raise SnniError("LPN encoding needs a (k, 16) block array")
        table = blocks(base.shape[0])
        table[:] = base
        self._table = table.view(np.uint64).reshape(-1, 2)
        self._key = key
        self._bits = None if base_bits is None else np.ascontiguousarray(base_bits, np.uint8)
        if self._bits is not None and self._bits.shape != (base.shape[0],):
            raise SnniError("LPN base bits must match the base blocks")
        self._kernel = _block_kernel() if use_numba else None
        self._bits_kernel = _bits_kernel() if self._kernel is not None else None
        self._bitset = (
            _EMPTY if self._bits is None else np.packbits(self._bits & 1, bitorder="little")
        )
        self._bitset32 = (
            _EMPTY32 if self._bits is None or self._bits_kernel is None
            else bitset_words(self._bits)
        )  # fmt: skip
        self._idx = np.empty(_CHUNK * D * 4 + 64, dtype=np.uint8)

    def encode(
        self, out: U8, *, first_row: int = 0, out_bits: U8 | None = None, assign: bool = False
    ) -> None:
        """In place over rows first_row .. of the outputs (``out`` may be a slice, so
        the caller can encode tree group by tree group), and on the bits too when the
        encoder has base bits and ``out_bits`` is given. ``assign`` writes the code
        words over ``out`` instead of XORing them in (the noise comes later). An
        encoder with base bits may leave ``out_bits`` out: blocks only (the bits
        then come from :meth:`encode_bits`)."""
        if out.ndim != 2 or out.shape[1] != 16 or not out.flags.c_contiguous:
            raise SnniError("LPN output must be a contiguous (n, 16) block array")
        if self._bits is None and out_bits is not None:
            raise SnniError("LPN encoding of bits needs both bit arrays")
        if out_bits is not None and out_bits.shape != (out.shape[0],):
            raise SnniError("LPN output bits must match the output blocks")
        o64 = out.view(np.uint64).reshape(-1, 2)
        n = o64.shape[0]
        for lo in range(0, n, _CHUNK):
            rows = min(_CHUNK, n - lo)
            idx = _index_words(self._key, first_row + lo, rows, self._idx)
            if self._kernel is not None:
                ob = _EMPTY if out_bits is None else out_bits
                self._kernel(self._table, o64, idx, self._bitset, ob, lo, assign)
            else:
                encode_numpy(self._table, o64, idx, self._bits, out_bits, lo, assign)

    def encode_bits(self, out_bits: U8, *, first_row: int = 0) -> None:
        """The bit code words alone, written over ``out_bits`` (rows first_row ..): the
        same bits :meth:`encode` gives, from the cached bit set instead of the table."""
        if self._bits is None:
            raise SnniError("LPN bit encoding needs base bits")
        if out_bits.ndim != 1 or out_bits.dtype != np.uint8:
            raise SnniError("LPN output bits must be a flat uint8 array")
        k = self._bits.shape[0]
        for lo in range(0, out_bits.shape[0], _CHUNK):
            rows = min(_CHUNK, out_bits.shape[0] - lo)
            idx = _index_words(self._key, first_row + lo, rows, self._idx)
            if self._bits_kernel is not None:
                self._bits_kernel(self._bitset32, out_bits, idx, lo, k)
            else:
                encode_bits_numpy(self._bits & np.uint8(1), k, out_bits, idx, lo)


def encode(
    key: bytes,
    base: U8,
    out: U8,
    *,
    base_bits: U8 | None = None,
    out_bits: U8 | None = None,
    first_row: int = 0,
    use_numba: bool = True,
) -> None:
    """In place: out[j] ^= XOR_r base[idx(first_row + j, r)] over 16-byte blocks, and
    the same on bits when both bit arrays are given (one-shot :class:`Encoder`)."""
    if (base_bits is None) != (out_bits is None):
        raise SnniError("LPN encoding of bits needs both bit arrays")
    enc = Encoder(key, base, base_bits, use_numba=use_numba)
    enc.encode(out, first_row=first_row, out_bits=out_bits)


def warm_up() -> None:
    """Compile (or load) the numba kernel ahead of the first iteration."""
    accelerated()
