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
from typing import Any

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from numpy.typing import NDArray

from secfepas_sdk.errors import SnniError

U8 = NDArray[np.uint8]
U32 = NDArray[np.uint32]
U64 = NDArray[np.uint64]

D = 10  # ones per column of the LPN matrix (Ferret's local linear code)
_CHUNK = 1 << 16  # output rows per index chunk: 2.6 MB of indices
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


def _index_words(key: bytes, start: int, rows: int) -> U32:
    """The D 32-bit words of rows start .. start + rows - 1 (AES-CTR at the right block)."""
    nbytes = rows * D * 4
    first_block, skip = divmod(start * D * 4, 16)
    nonce = first_block.to_bytes(16, "big")
    enc = Cipher(algorithms.AES(key), modes.CTR(nonce)).encryptor()
    buf = np.zeros(skip + nbytes + 16, dtype=np.uint8)
    out = np.empty(buf.size + 15, dtype=np.uint8)
    enc.update_into(buf.data, out.data)
    return out[skip : skip + nbytes].view(np.uint32).reshape(rows, D)


def matrix_key(iteration: int, domain: int) -> bytes:
    """The public per-iteration AES key of the index stream."""
    tag = np.array([iteration, domain], dtype=np.uint64).view(np.uint8)
    return bytes(np.frombuffer(INDEX_KEY, dtype=np.uint8) ^ tag)


def encode_numpy(
    base: U64, out: U64, idx: U32, base_bits: U8 | None, out_bits: U8 | None, start: int
) -> None:
    """numpy fallback of the encode kernel (about 30x slower)."""
    k = np.uint64(base.shape[0])
    rows = (idx.astype(np.uint64) * k) >> np.uint64(32)
    stop = start + idx.shape[0]
    for r in range(D):
        out[start:stop] ^= base[rows[:, r]]
        if base_bits is not None and out_bits is not None:
            out_bits[start:stop] ^= base_bits[rows[:, r]]


def _build_numba() -> Callable[..., None] | None:
    try:
        import numba
    except ImportError:
        return None

    @numba.njit(cache=True, nogil=True)
    def kernel(
        base: Any, out: Any, idx: Any, base_bits: Any, out_bits: Any, start: Any
    ) -> None:  # pragma: no cover - compiled
        k = np.uint64(base.shape[0])
        with_bits = base_bits.shape[0] > 0
        for j in range(idx.shape[0]):
            a0 = np.uint64(0)
            a1 = np.uint64(0)
            bit = np.uint8(0)
            for r in range(idx.shape[1]):
                i = (np.uint64(idx[j, r]) * k) >> np.uint64(32)
                a0 ^= base[i, 0]
                a1 ^= base[i, 1]
                if with_bits:
                    bit ^= base_bits[i]
            out[start + j, 0] ^= a0
            out[start + j, 1] ^= a1
            if with_bits:
                out_bits[start + j] ^= bit

    return kernel


_KERNEL: list[Callable[..., None] | None] = []
_EMPTY = np.zeros(0, dtype=np.uint8)


def accelerated() -> bool:
    """Whether the numba kernel is available (otherwise the numpy fallback runs)."""
    if not _KERNEL:
        _KERNEL.append(_build_numba())
    return _KERNEL[0] is not None


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
    the same on bits when both bit arrays are given. ``out`` may be a slice of the
    outputs (rows first_row ..), so the caller can encode tree group by tree group."""
    if base.ndim != 2 or base.shape[1] != 16 or out.ndim != 2 or out.shape[1] != 16:
        raise SnniError("LPN encoding needs (k, 16) and (n, 16) block arrays")
    if (base_bits is None) != (out_bits is None):
        raise SnniError("LPN encoding of bits needs both bit arrays")
    b64 = np.ascontiguousarray(base).view(np.uint64).reshape(-1, 2)
    if not out.flags.c_contiguous:
        raise SnniError("LPN output must be contiguous")
    o64 = out.view(np.uint64).reshape(-1, 2)
    kernel = _KERNEL[0] if use_numba and accelerated() else None
    n = o64.shape[0]
    for lo in range(0, n, _CHUNK):
        rows = min(_CHUNK, n - lo)
        idx = _index_words(key, first_row + lo, rows)
        if kernel is not None:
            bb = _EMPTY if base_bits is None else np.ascontiguousarray(base_bits)
            ob = _EMPTY if out_bits is None else out_bits
            kernel(b64, o64, idx, bb, ob, lo)
        else:
            encode_numpy(b64, o64, idx, base_bits, out_bits, lo)


def warm_up() -> None:
    """Compile (or load) the numba kernel ahead of the first iteration."""
    encode(matrix_key(0, 0), np.zeros((2, 16), np.uint8), np.zeros((1, 16), np.uint8))
