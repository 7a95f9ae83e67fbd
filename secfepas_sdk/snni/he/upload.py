"""The upload encoding: the camera's seeded ciphertext as its residues, bit-packed.

Who holds what: the camera encrypts its share with seeded symmetric encryption, so
an input ciphertext is c0 = -(a s + e) + Delta x (limbs x N residues) and the 64-byte
seed whose expansion is a = c1. SEAL's own save writes every residue as a 64-bit
word (zstd gains almost nothing on uniform residues), so with primes q_i of b_i bits
it sends 64 bits where b_i carry the value. Here an upload travels as each prime's
N residues at b_i bits (little-endian fields), then the seed: sum_i ceil(N b_i / 8)
+ 64 bytes, a size fixed by the plan's parameter set.

The edge rebuilds SEAL's seeded form from exactly those values (sealio) and lets
SEAL load it, which expands c1 from the seed: c1 is never the camera's choice, as
the seeded check of SEAL-format uploads ensures (engine.py, keys.py). A residue no
prime gives, or a wrong size, is refused (``PeerDataError``) before SEAL sees it.
Nothing changes for security: the same values and seed as SEAL's bytes carry.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from secfepas_sdk.errors import PeerDataError, SnniError
from secfepas_sdk.snni.he import sealio
from secfepas_sdk.snni.ot.bits import pack_bits, unpack_bits

__all__ = ["UploadCodec"]

U64 = NDArray[np.uint64]


class UploadCodec:
    """One parameter set's input ciphertexts on the wire (both parties build it)."""

    def __init__(self, moduli: U64, n: int, parms_id: bytes) -> None:
        self.moduli = np.asarray(moduli, dtype=np.uint64)
        if self.moduli.ndim != 1 or not self.moduli.size or int(self.moduli.min()) < 3:
            raise SnniError("an upload codec needs the working primes")
        self.n = n
        self.parms_id = parms_id
        self.widths = [int(q).bit_length() for q in self.moduli]
        self._split = np.cumsum([0, *(math.ceil(n * b / 8) for b in self.widths)])
        self.size = int(self._split[-1]) + sealio.SEED_BYTES

    def encode(self, saved: bytes) -> bytes:
        """Camera: SEAL's save of its fresh seeded ciphertext -> the upload's bytes."""
        parms, ntt, c0, prng, seed = sealio.seeded_ciphertext_parts(saved)
        if parms != self.parms_id or ntt or c0.shape != (self.moduli.size, self.n):
            raise SnniError("an upload must be a fresh ciphertext at the working level")
        if prng != sealio.PRNG_BLAKE2XB:
            raise SnniError("this SEAL build seeds ciphertexts with another PRNG than Blake2xb")
        parts = [pack_bits(c0[i], b) for i, b in enumerate(self.widths)]
        return b"".join(parts) + seed

    def decode(self, raw: bytes) -> bytes:
        """Edge: the upload's bytes (from the peer: checked) -> SEAL's seeded form."""
        if len(raw) != self.size:
            raise PeerDataError(f"an HE upload has {len(raw)} bytes, the plan implies {self.size}")
        c0 = np.empty((self.moduli.size, self.n), dtype=np.uint64)
        for i, b in enumerate(self.widths):
            c0[i] = unpack_bits(raw[self._split[i] : self._split[i + 1]], self.n, b)
        if np.any(c0 >= self.moduli[:, None]):
            raise PeerDataError("HE upload residue out of range")
        seed = raw[self._split[-1] :]
        return sealio.seeded_ciphertext_bytes(
            c0, seed, parms_id=self.parms_id, ntt_form=False, poly_degree=self.n
        )
