"""Noise flooding sized to a circuit-privacy budget, in exact arithmetic.

Who holds what: the edge floods the c0 of every reply with E uniform over the
2^(F+1) integers of [-2^F, 2^F); the camera, which holds the secret key, decrypts
the c0 coefficients it receives. At one such coefficient the noise that depends
on the weights (and the re-randomisation's, which the camera cannot know
either) is at most B, so the coefficient is within statistical distance
B / 2^(F+1) <= 2^-sigma of a value independent of the weights, with
sigma = F - log2(B) - 1 (params.check_layer_noise). Distances add up over the
coefficients of every reply and every inference (snni.privacy).

A :class:`CircuitPrivacy` budget states the total distance a deployment accepts,
2^distance_log2 over ``inferences`` inferences under the same weights. The
compiler gives every decryptable coefficient an equal share of it and floods
each layer with the least F that meets that share: the flood costs the same
whatever its size, but a smaller one leaves room in the switched reply's noise,
which the reply encoding spends on dropping low-order bits (:func:`drop_bits`).

Every decision here is in integers and fractions, never floats: both parties
derive the same F and the same dropped bits on any machine.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np
from numpy.typing import NDArray

from secfepas_sdk.errors import InvalidValueError, SnniError
from secfepas_sdk.snni.he.params import MIN_FLOOD_SIGMA, HeParams
from secfepas_sdk.snni.kernels import checked_kernel
from secfepas_sdk.snni.prg import Prg

__all__ = [
    "DEFAULT_BUDGET",
    "CircuitPrivacy",
    "drop_bits",
    "flood_distance",
    "flood_residues",
    "noise_bound",
    "sized_flood_bits",
]

U64 = NDArray[np.uint64]

# The same constants as params.FRESH_NOISE_MAX (21) and the CBD bound (21), exactly.
_FRESH = Fraction(21)
_CBD = 21
MAX_INFERENCES = 10**15


@dataclass(frozen=True, slots=True, kw_only=True)
class CircuitPrivacy:
    """A deployment's budget: flooding leaves at most 2^distance_log2 of statistical
    distance in total over ``inferences`` inferences under the same weights."""

    distance_log2: int = -40
    inferences: int = 10**8

    def __post_init__(self) -> None:
        d, n = self.distance_log2, self.inferences
        if type(d) is not int or not -128 <= d <= -1:
            raise InvalidValueError(f"circuit_privacy distance_log2 must be in -128..-1, got {d!r}")
        if type(n) is not int or not 1 <= n <= MAX_INFERENCES:
            raise InvalidValueError(
                f"circuit_privacy inferences must be in 1..{MAX_INFERENCES}, got {n!r}"
            )

    @property
    def total(self) -> Fraction:
        """The total distance the budget allows, 2^distance_log2."""
        return Fraction(1, 1 << -self.distance_log2)

    def per_coefficient(self, coefficients: int) -> Fraction:
        """Each decryptable coefficient's equal share when one inference has ``coefficients``."""
        return self.total / (self.inferences * max(coefficients, 1))

    def describe(self) -> str:
        return f"2^{self.distance_log2} over {self.inferences} inferences"

    def to_dict(self) -> dict[str, int]:
        return {"distance_log2": self.distance_log2, "inferences": self.inferences}

    @staticmethod
    def from_dict(d: Any) -> CircuitPrivacy:
        if not isinstance(d, dict) or set(d) != {"distance_log2", "inferences"}:
            raise InvalidValueError("circuit_privacy needs exactly distance_log2 and inferences")
        return CircuitPrivacy(distance_log2=d["distance_log2"], inferences=d["inferences"])


DEFAULT_BUDGET = CircuitPrivacy()


def noise_bound(params: HeParams, l1_log2: int) -> Fraction:
    """B: the larger of the weight-dependent noise (21 + 1) * 2^l1_log2 and the
    re-randomisation's (21 + 21) * N + 21 (params.data_noise_log2, pk_zero_noise_log2)."""
    data = (_FRESH + 1) * (1 << max(l1_log2, 0))
    pk = (_FRESH + _CBD) * params.poly_degree + _CBD
    return max(data, pk)


def flood_distance(params: HeParams, l1_log2: int, flood_bits: int) -> Fraction:
    """2^-sigma = 2 B / 2^F: one coefficient's statistical distance."""
    return 2 * noise_bound(params, l1_log2) / (1 << flood_bits)


def sized_flood_bits(params: HeParams, ring_bits: int, l1_log2: int, share: Fraction) -> int:
    """The least F whose per-coefficient distance is within ``share`` (and 2^-40),
    or SnniError if it exceeds the largest flood that still decrypts."""
    need = min(share, Fraction(1, 1 << MIN_FLOOD_SIGMA))
    ratio = 2 * noise_bound(params, l1_log2) / need  # need 2^F >= ratio
    flood = (math.ceil(ratio) - 1).bit_length()  # the least F with 2^F >= ratio
    most = params.flood_bits(ring_bits)
    if flood > most:
        raise SnniError(
            f"needs 2^{flood} of flooding, but {params.name} decrypts correctly only up to "
            f"2^{most} at a ring of {ring_bits} bits"
        )
    return flood


def noise_room(params: HeParams, ring_bits: int, flood_bits: int) -> Fraction:
    """What the switched reply's noise may still grow by and decrypt.

    At the last modulus q0 (L bits) decryption is right while the noise stays
    below q0 / (2t) ~ 2^(L-l-1); we keep a factor 2 of margin, 2^(L-l-2). The
    flooded noise (< 2^(F+1) at the working modulus, D bits) scales to
    2^(F+1+L-D), and switching adds a rounding term <= (1 + N)/2 (+ 1 for the
    earlier switching steps, each divided by a later prime)."""
    working, last, n = params.data_bits, params.last_bits, params.poly_degree
    threshold = Fraction(1 << (last - ring_bits - 2))
    flood = Fraction(2) ** (flood_bits + 1 + last - working)
    return threshold - flood - Fraction(n + 1, 2) - 1


def drop_bits(
    params: HeParams, ring_bits: int, flood_bits: int, c0_coefficients: int, c1_coefficients: int
) -> tuple[int, int]:
    """(d0, d1): low-order bits of c0 and c1 the reply encoding drops after the switch.

    The camera puts each dropped value back at the middle of its 2^d interval, so a
    c0 coefficient is off by at most 2^(d0-1), and c1 by at most 2^(d1-1), which
    the ternary secret s multiplies into at most N 2^(d1-1) of decryption noise.
    Both must fit :func:`noise_room`; among the pairs that do, the one that sends
    the fewest bits for this layer's coefficients (ties: fewer c1 bits dropped)."""
    room = noise_room(params, ring_bits, flood_bits)
    if room < 0:
        raise SnniError(f"{params.name}: a flood of 2^{flood_bits} leaves no noise room")
    n, last = params.poly_degree, params.last_bits
    best = (0, 0, 0)  # (bits saved, -d1, d0)
    for d1 in range(last):
        c1_err = n * (1 << (d1 - 1)) if d1 else 0
        if c1_err > room:
            break
        left = room - c1_err  # 2^(d0-1) <= left: d0 = floor(log2(left)) + 1
        d0 = 0 if left < 1 else min(last - 1, math.floor(left).bit_length())
        best = max(best, (d0 * c0_coefficients + d1 * c1_coefficients, -d1, d0))
    return best[2], -best[1]


def flood_residues(prg: Prg, flood_bits: int, moduli: U64, n: int) -> U64:
    """E mod q for every working prime q, stacked (limbs, n): E uniform over the
    2^(F+1) integers of [-2^F, 2^F), one integer per coefficient (the edge's secret).

    E + 2^F is drawn as F + 1 uniform bits in 32-bit pieces u_j; each residue is
    sum_j u_j (2^(32 j) mod q) - 2^F mod q, with products reduced exactly."""
    width = flood_bits + 1
    pieces = [prg.uint64(n, min(32, width - j)) for j in range(0, width, 32)]
    qs = [int(m) for m in moduli]
    kernel = _kernel()
    if kernel is not None and max(qs) < 1 << 62:
        consts = [[pow(2, 32 * j, q) for j in range(len(pieces))] for q in qs]
        out = np.empty((len(qs), n), dtype=np.uint64)
        kernel(
            np.stack(pieces),
            np.asarray(consts, dtype=np.uint64),
            np.asarray([[c / q for c in row] for row, q in zip(consts, qs, strict=True)]),
            np.asarray([(q - pow(2, flood_bits, q)) % q for q in qs], dtype=np.uint64),
            np.asarray(qs, dtype=np.uint64),
            out,
        )
        return out
    return _residues_numpy(pieces, flood_bits, qs, n)


def _residues_numpy(pieces: list[U64], flood_bits: int, qs: list[int], n: int) -> U64:
    """:func:`flood_residues`' reduction in numpy: sum_j u_j (2^(32 j) mod q) - 2^F mod q."""
    out = np.zeros((len(qs), n), dtype=np.uint64)
    for limb, q in enumerate(qs):
        acc = np.full(n, (q - pow(2, flood_bits, q)) % q, dtype=np.uint64)
        for j, piece in enumerate(pieces):
            acc = (acc + _mulmod(piece, pow(2, 32 * j, q), q)) % np.uint64(q)
        out[limb] = acc
    return out


@checked_kernel
def _kernel() -> Any:
    """The numba version of :func:`flood_residues`' reduction if it gives numpy's
    residues on a small draw (numba is in the edge extra), else None (numpy then)."""
    from secfepas_sdk.snni.he import _flood_kernel

    kernel = _flood_kernel.flood_residues
    moduli = np.asarray([(1 << 60) - 93, 274877562881], dtype=np.uint64)
    qs = [int(q) for q in moduli]
    pieces = [Prg(bytes(16)).uint64(8, 32) for _ in range(3)]
    consts = [[pow(2, 32 * j, q) for j in range(3)] for q in qs]
    got = np.empty((2, 8), dtype=np.uint64)
    kernel(
        np.stack(pieces),
        np.asarray(consts, dtype=np.uint64),
        np.asarray([[c / q for c in row] for row, q in zip(consts, qs, strict=True)]),
        np.asarray([(q - pow(2, 95, q)) % q for q in qs], dtype=np.uint64),
        moduli,
        got,
    )
    want = _residues_numpy(pieces, 95, qs, 8)
    return kernel if np.array_equal(got, want) else None


def warm_up() -> None:
    """Load (and if needed compile) the kernel now, not in the middle of a layer call:
    its probe runs it once."""
    _kernel()


def _mulmod(u: U64, c: int, q: int) -> U64:
    """u * c mod q for u < 2^32 and c < q < 2^62, exactly: the quotient from floats is
    off by at most one, and the remainder is computed modulo 2^64, where it is exact."""
    quot = np.floor(u.astype(np.float64) * (c / q)).astype(np.uint64)
    r = (u * np.uint64(c) - quot * np.uint64(q)).view(np.int64)  # in [-q, 2q)
    r = np.where(r < 0, r + q, r)
    r = np.where(r >= q, r - q, r)
    out: U64 = r.view(np.uint64)
    return out
