"""Fixed-key AES correlation-robust hash (Guo, Katz, Wang, Yu; S&P 2020).

H(i, x) = pi(pi(x) xor i) xor pi(x), the "TMMO" construction, where pi is AES-128
under a fixed public key and i is a 128-bit tweak (the OT index plus a domain
tag). Guo et al. prove TMMO tweakable circular correlation robust in the ideal
permutation model, which is what IKNP with a global offset needs. Only public
data goes into the key; the secrecy is all in the hashed blocks.
"""

from __future__ import annotations

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from numpy.typing import NDArray

from secfepas_sdk.errors import SnniError

# A fixed public "nothing up my sleeve" key: the first 16 bytes of SHA-256("secfepas crhash").
FIXED_KEY = bytes.fromhex("99cfadfb43294172dcc4084340b747dc")

# ECB is right here: pi is AES used as a fixed public permutation, block by block.
_ECB = Cipher(algorithms.AES(FIXED_KEY), modes.ECB())  # noqa: S305


def _permute(blocks: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """pi applied to each 16-byte row of a contiguous (n, 16) array."""
    n = blocks.shape[0]
    out = np.empty(n * 16 + 15, dtype=np.uint8)
    enc = _ECB.encryptor()
    enc.update_into(np.ascontiguousarray(blocks).data, out.data)
    return out[: n * 16].reshape(n, 16)


def tweaks(start: int, count: int, domain: int) -> NDArray[np.uint8]:
    """Tweak blocks (start + k, domain) for k in range(count), as (count, 16) bytes."""
    words = np.empty((count, 2), dtype=np.uint64)
    words[:, 0] = np.arange(start, start + count, dtype=np.uint64)
    words[:, 1] = np.uint64(domain)
    return words.view(np.uint8).reshape(count, 16)


def crhash(blocks: NDArray[np.uint8], tweak: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """TMMO hash of each (n, 16) block under the matching (n, 16) tweak."""
    if blocks.shape != tweak.shape or blocks.ndim != 2 or blocks.shape[1] != 16:
        raise SnniError(f"crhash needs two (n, 16) arrays, got {blocks.shape} and {tweak.shape}")
    first = _permute(blocks)
    second = _permute(first ^ tweak)
    second ^= first
    return second


def crhash_u64(
    blocks: NDArray[np.uint8], tweak: NDArray[np.uint8], width: int
) -> NDArray[np.uint64]:
    """The low ``width`` (<= 64) bits of each hash as uint64."""
    if not 1 <= width <= 64:
        raise SnniError(f"hash width must be in 1..64, got {width}")
    out = crhash(blocks, tweak)[:, :8].copy().view(np.uint64).reshape(-1)
    if width < 64:
        out &= np.uint64((1 << width) - 1)
    return out
