"""Fixed-point arithmetic in the ring Z_{2^l}, with additive secret sharing.

Values are uint64 arrays holding residues in [0, 2^l). A real number x is
encoded as round(x * 2^f) mod 2^l; residues >= 2^(l-1) read back as negative.
Who holds what: a secret x is split into x0 (camera) and x1 (edge) with
x0 + x1 = x mod 2^l; each share alone is uniform and says nothing about x.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from secfepas_sdk.errors import InvalidValueError
from secfepas_sdk.snni.prg import Prg

U64 = NDArray[np.uint64]

MAX_BITS = 60  # a SEAL plaintext modulus must fit in 60 bits


@dataclass(frozen=True, slots=True, kw_only=True)
class Ring:
    """Z_{2^bits} with ``frac_bits`` fractional bits for fixed point."""

    bits: int
    frac_bits: int

    def __post_init__(self) -> None:
        if not 2 <= self.bits <= MAX_BITS:
            raise InvalidValueError(f"ring bits must be in 2..{MAX_BITS}, got {self.bits}")
        if not 0 <= self.frac_bits < self.bits - 1:
            raise InvalidValueError(
                f"frac_bits must be in 0..{self.bits - 2}, got {self.frac_bits}"
            )

    @property
    def mask(self) -> np.uint64:
        return np.uint64((1 << self.bits) - 1)

    @property
    def modulus(self) -> int:
        return 1 << self.bits

    @property
    def max_signed(self) -> int:
        """Largest representable signed residue, 2^(l-1) - 1."""
        return (1 << (self.bits - 1)) - 1

    @property
    def min_signed(self) -> int:
        return -(1 << (self.bits - 1))

    @property
    def scale(self) -> float:
        return float(1 << self.frac_bits)

    def reduce(self, values: ArrayLike) -> U64:
        """Residues mod 2^l of any integer array (two's complement for negatives)."""
        arr = np.asarray(values)
        if arr.dtype != np.uint64:
            arr = (
                arr.astype(np.int64).view(np.uint64)
                if arr.dtype.kind == "i"
                else arr.astype(np.uint64)
            )
        return arr & self.mask

    def from_signed(self, values: ArrayLike) -> U64:
        """Encode signed integers (int64) as residues."""
        return np.asarray(values, dtype=np.int64).view(np.uint64) & self.mask

    def to_signed(self, residues: U64) -> NDArray[np.int64]:
        """Interpret residues in [0, 2^l) as signed integers in [-2^(l-1), 2^(l-1))."""
        shift = np.uint64(64 - self.bits)
        return ((np.asarray(residues, dtype=np.uint64) << shift).view(np.int64)) >> np.int64(
            64 - self.bits
        )

    def encode(self, values: ArrayLike) -> U64:
        """Fixed-point encode reals: round(x * 2^f), saturated to the signed range."""
        scaled = np.rint(np.asarray(values, dtype=np.float64) * self.scale)
        clipped = np.clip(scaled, self.min_signed, self.max_signed).astype(np.int64)
        # float64 rounds 2^(l-1) - 1 up to 2^(l-1) for l > 53: clip again in integers.
        return self.from_signed(np.minimum(clipped, self.max_signed))

    def decode(self, residues: U64) -> NDArray[np.float64]:
        return self.to_signed(residues).astype(np.float64) / self.scale

    def add(self, a: U64, b: U64) -> U64:
        return (a + b) & self.mask

    def sub(self, a: U64, b: U64) -> U64:
        return (a - b) & self.mask

    def neg(self, a: U64) -> U64:
        return (np.uint64(0) - a) & self.mask

    def mul(self, a: U64, b: U64) -> U64:
        """Product mod 2^l (uint64 wrap-around is exact mod 2^64, so mod 2^l too)."""
        return (a * b) & self.mask

    def random(self, prg: Prg, shape: int | tuple[int, ...]) -> U64:
        return prg.uint64(shape, self.bits)

    def share(self, secret: U64, prg: Prg) -> tuple[U64, U64]:
        """Split ``secret`` into two shares; the first is uniform from ``prg``."""
        first = self.random(prg, np.shape(secret))
        return first, self.sub(secret, first)

    def reconstruct(self, share0: U64, share1: U64) -> U64:
        return self.add(share0, share1)
