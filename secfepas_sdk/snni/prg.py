"""AES-CTR pseudo-random generator for masks, shares and protocol randomness.

Seeds come from :mod:`secrets`; the stream is AES-128 in counter mode from
``cryptography``. Two parties that share a seed (for example after a
key-agreement step) derive identical streams, which is how correlated
randomness is expanded without sending it.
"""

from __future__ import annotations

import secrets
import struct

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from numpy.typing import NDArray

from secfepas_sdk.errors import InvalidValueError

SEED_BYTES = 16
_ZERO_NONCE = bytes(16)
_CHUNK = 1 << 20
_ZEROS = np.zeros(_CHUNK, dtype=np.uint8)
_ZEROS.setflags(write=False)
# Derived-seed inputs have the top bit set: a CTR stream under the same key counts up from
# 0 and never reaches 2^127, so a derived seed is never also a block of that stream.
_DERIVE = struct.Struct(">QQ")
_DERIVE_TAG = 1 << 63


def derive_seed(seed: bytes, stream: int, index: int) -> bytes:
    """The seed of stream (``stream``, ``index``) under ``seed``: AES-128_seed of the pair.

    AES is a PRF, so the seeds of distinct pairs are pseudo-random and independent,
    and so are the PRG streams they start (the standard PRF-then-PRG argument). Any
    process that holds ``seed`` derives one stream without drawing the others, so
    work split across processes draws exactly the values one process would."""
    if len(seed) != SEED_BYTES:
        raise InvalidValueError(f"PRG seed must be {SEED_BYTES} bytes, got {len(seed)}")
    if not (0 <= stream < _DERIVE_TAG and 0 <= index < 1 << 64):
        raise InvalidValueError(f"stream index ({stream}, {index}) out of range")
    ecb = Cipher(algorithms.AES(seed), modes.ECB()).encryptor()  # noqa: S305 - one PRF block
    return ecb.update(_DERIVE.pack(_DERIVE_TAG | stream, index)) + ecb.finalize()


class Prg:
    """A seekable-forward AES-128-CTR byte stream.

    Not thread-safe: give each thread its own instance (``Prg.fork``).
    """

    __slots__ = ("_encryptor", "_seed")

    def __init__(self, seed: bytes | None = None) -> None:
        if seed is None:
            seed = secrets.token_bytes(SEED_BYTES)
        if len(seed) != SEED_BYTES:
            raise InvalidValueError(f"PRG seed must be {SEED_BYTES} bytes, got {len(seed)}")
        self._seed = bytes(seed)
        cipher = Cipher(algorithms.AES(self._seed), modes.CTR(_ZERO_NONCE))
        self._encryptor = cipher.encryptor()

    def fork(self) -> Prg:
        """A new independent PRG seeded from this one's stream."""
        return Prg(self.random_bytes(SEED_BYTES))

    def stream(self, n: int) -> NDArray[np.uint8]:
        """The next ``n`` bytes of the stream as a fresh uint8 array."""
        out = np.empty(n + 15, dtype=np.uint8)
        # update_into on preallocated buffers runs at GB/s; update() is 5-10x slower.
        for offset in range(0, n, _CHUNK):
            size = min(_CHUNK, n - offset)
            self._encryptor.update_into(_ZEROS[:size].data, out[offset : offset + size + 15].data)
        return out[:n]

    def fill(self, out: NDArray[np.uint8]) -> None:
        """Overwrite a C-contiguous uint8 buffer with fresh stream bytes."""
        out.reshape(-1)[:] = self.stream(out.size)

    def random_bytes(self, n: int) -> bytes:
        return self.stream(n).tobytes()

    def uint64(self, shape: int | tuple[int, ...], bits: int = 64) -> NDArray[np.uint64]:
        """Uniform integers in [0, 2**bits) as uint64."""
        if not 1 <= bits <= 64:
            raise InvalidValueError(f"bits must be in 1..64, got {bits}")
        count = int(np.prod(shape))
        out = self.stream(count * 8).view(np.uint64).reshape(shape)
        if bits < 64:
            out &= np.uint64((1 << bits) - 1)
        return out

    def bits(self, shape: int | tuple[int, ...]) -> NDArray[np.uint8]:
        """Uniform bits (0 or 1) as uint8."""
        count = int(np.prod(shape))
        return np.unpackbits(self.stream((count + 7) // 8), count=count).reshape(shape)

    def block128(self, count: int) -> NDArray[np.uint8]:
        """``count`` uniform 128-bit blocks as a (count, 16) uint8 array."""
        return self.stream(count * 16).reshape(count, 16)
