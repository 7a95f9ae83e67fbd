"""Named BFV parameter sets and the per-layer noise arithmetic.

Security is argued against the HomomorphicEncryption.org standard (Albrecht et
al., 2018, Table 1, ternary secret, classical): for N = 8192 a 128-bit level
allows log2(q) <= 218. Keys that exist in a session: the client's secret key
and one public key (an RLWE sample the server uses to re-randomise replies).
No relinearisation or Galois keys are ever generated, so no key-switching key
widens the attack surface. See docs/snni-he.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from secfepas_sdk._extras import require
from secfepas_sdk.errors import InvalidValueError, SnniError

# SEAL (4.x, as tenseal bundles it, built without SEAL_USE_GAUSSIAN_NOISE) samples
# encryption and key noise from a centred binomial distribution, sigma 3.2: |e| <= 21.
# (19.2, its clipped-normal bound of 6 sigma, held only for the Gaussian build.)
FRESH_NOISE_MAX = 21
# Per-coefficient statistical security of noise flooding (bits), enforced per layer.
MIN_FLOOD_SIGMA = 40


@dataclass(frozen=True, slots=True, kw_only=True)
class HeParams:
    """One named BFV parameter set (plain modulus t = 2^l is set per model)."""

    name: str
    poly_degree: int
    coeff_bits: tuple[int, ...]
    security_bits: int
    standard_max_logq: int
    packed_uploads: bool = False
    """True: input ciphertexts travel bit-packed (he.upload), not as SEAL's bytes."""

    def __post_init__(self) -> None:
        if self.poly_degree & (self.poly_degree - 1):
            raise InvalidValueError("poly_degree must be a power of two")
        if sum(self.coeff_bits) > self.standard_max_logq:
            raise InvalidValueError(f"{self.name}: log q above the standard's bound")

    @property
    def data_bits(self) -> int:
        """Bits of the working modulus (all primes but the special one)."""
        return sum(self.coeff_bits[:-1])

    @property
    def last_bits(self) -> int:
        """Bits of the modulus replies are switched down to."""
        return self.coeff_bits[0]

    def flood_bits(self, ring_bits: int) -> int:
        """log2 of the flooding noise bound F that still decrypts correctly.

        The total noise is at most 2^(F+1) (data and re-randomisation noise are
        2^-40 of the flood). At the working level it must stay below
        q/(2t) = 2^(D-l-1); after switching to q_0 it scales to
        2^(F+1+L-D) and gains a rounding term <= (1+N)/2, and the sum must stay
        below 2^(L-l-1). F = D-l-4 meets the first with 3 bits of margin and
        makes the scaled term 2^(L-l-3); the rounding term needs N <= 2^(L-l-3).
        """
        if self.last_bits - ring_bits - 3 < math.log2(self.poly_degree) + 1:
            raise SnniError(
                f"{self.name}: a ring of {ring_bits} bits leaves no room after mod-switching"
            )
        return self.data_bits - ring_bits - 4


# 180-bit q at N=8192: 128-bit classical security by the standard (bound 218) and
# by SEAL's own tables (which also give 218 for N=8192).
BFV_N8192 = HeParams(
    name="bfv-n8192-q180",
    poly_degree=8192,
    coeff_bits=(60, 60, 60),
    security_bits=128,
    standard_max_logq=218,
)

# 218-bit q at N=8192, the most the standard (and SEAL's table) allows for 128 bits:
# three 60-bit working primes (D = 180, room for floods up to 2^(D-l-4)) and a 38-bit
# special prime. The special prime only serves key switching, which never happens
# here (no relinearisation or Galois keys); it exists because SEAL always keeps the
# last prime for it. Costs 3/2 of q180 in camera->edge bytes and in edge NTTs and
# products; chosen by the compiler when a circuit-privacy budget needs it.
BFV_N8192_Q218 = HeParams(
    name="bfv-n8192-q218",
    poly_degree=8192,
    coeff_bits=(60, 60, 60, 38),
    security_bits=128,
    standard_max_logq=218,
)

# 200-bit q at N=8192 (128-bit classical by the same standard, bound 218): working
# primes of 60, 51 and 51 bits (D = 162) and the 38-bit special prime. A budget's
# flood of 2^F needs D >= F + l + 4; D = 162 holds ResNet50's largest (F = 119 at
# l = 37) with 2 bits to spare, so its switched flood (2^(F+1+L-D) <= 2^18) leaves the
# replies' dropped bits as at D = 180. 51 bits is the least the direct products allow
# (_direct_kernel.shift_recombine needs q > 2^50). Its uploads travel bit-packed
# (he.upload): 162 bits per coefficient instead of SEAL's 3 x 64, 165,952 bytes
# against 196,6xx. Same NTTs and products as q218 (three working primes).
BFV_N8192_Q200 = HeParams(
    name="bfv-n8192-q200",
    poly_degree=8192,
    coeff_bits=(60, 51, 51, 38),
    security_bits=128,
    standard_max_logq=218,
    packed_uploads=True,
)

# Cheapest first: the compiler takes the first set that meets a model's budget.
PARAM_SETS: dict[str, HeParams] = {p.name: p for p in (BFV_N8192, BFV_N8192_Q200, BFV_N8192_Q218)}
DEFAULT_PARAMS = BFV_N8192.name  # for plans compiled without a budget


def get_params(name: str) -> HeParams:
    try:
        return PARAM_SETS[name]
    except KeyError:
        known = ", ".join(sorted(PARAM_SETS))
        raise SnniError(f"unknown HE parameter set {name!r}; known: {known}") from None


def data_noise_log2(l1_norm: float) -> float:
    """log2 bound on the noise after multiplying fresh ciphertexts by weights.

    Each input ciphertext carries |e| <= 21 plus two encoding roundings of at
    most 1/2 (client's encryption, server's add of its own share); the product
    with an integer kernel polynomial multiplies it by at most the kernel's L1
    norm, and ``l1_norm`` is the sum over all kernels summed into one output.
    """
    return math.log2((FRESH_NOISE_MAX + 1.0) * max(l1_norm, 1.0))


def pk_zero_noise_log2(poly_degree: int) -> float:
    """log2 bound on the noise of a public-key encryption of zero, e_pk*u + e1 + e2*s,
    with |e_pk|, |e1|, |e2| <= 21 (SEAL's and our centred binomial) and ternary u, s."""
    return math.log2((FRESH_NOISE_MAX + 21.0) * poly_degree + 21.0)


def flood_sigma(params: HeParams, l1_norm: float, flood_bits: int) -> float:
    """sigma = F - log2(noise bound) - 1: a flood of 2^F puts one coefficient within
    statistical distance 2^-sigma of a value that does not depend on the weights."""
    data = max(data_noise_log2(l1_norm), pk_zero_noise_log2(params.poly_degree))
    return flood_bits - data - 1


def check_layer_noise(params: HeParams, ring_bits: int, l1_norm: float) -> tuple[int, float]:
    """(flood bits, per-coefficient statistical sigma) for one layer, or SnniError.

    Run at compile time with the public bound on the weights so that a reply
    can never decrypt silently wrong, and the flooding hides the weight-dependent
    noise with at least MIN_FLOOD_SIGMA bits of statistical distance.
    """
    flood = params.flood_bits(ring_bits)
    sigma = flood_sigma(params, l1_norm, flood)
    if sigma < MIN_FLOOD_SIGMA:
        raise SnniError(
            f"noise budget too small: flooding gives only {sigma:.1f} bits of statistical "
            f"security (need {MIN_FLOOD_SIGMA}); reduce the ring bits or the weight range"
        )
    return flood, sigma


def make_context(params: HeParams, ring_bits: int) -> Any:
    """A SEALContext for BFV with plain modulus 2^ring_bits (batching off)."""
    seal = require("tenseal.sealapi", "camera")
    parms = seal.EncryptionParameters(seal.SCHEME_TYPE.BFV)
    parms.set_poly_modulus_degree(params.poly_degree)
    parms.set_coeff_modulus(seal.CoeffModulus.Create(params.poly_degree, list(params.coeff_bits)))
    parms.set_plain_modulus(1 << ring_bits)
    context = seal.SEALContext(parms, True, seal.SEC_LEVEL_TYPE.TC128)
    if not context.parameters_set():
        raise SnniError(f"SEAL rejected {params.name}: {context.parameters_error_message()}")
    return context
