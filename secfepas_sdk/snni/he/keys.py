"""The camera's public key, whose uniform half the camera cannot choose.

The edge re-randomises every reply with u*(pk0, pk1) + (e1, e2) (engine.py).
If the camera chose pk1, a degenerate one (pk1 = 1) would leave the reply's
c1 = sum_j a_j W_j + u + e2: the kernels, in about one query. So:
- the edge sends a fresh 64-byte seed; pk1 = a is SEAL's own expansion of it
  (the one SEAL's loader applies to every seeded ciphertext: Blake2xb, then
  sample_poly_uniform per prime), computed by each side for itself;
- the camera sends only pk0 = -(a*s + e), and the edge builds the key from its
  own seed and that pk0, so no pk1 is ever read from the camera;
- the edge refuses a pk0 (and, as a self-check, an expanded pk1) that is out of
  range, or zero, constant, sparse or small in either domain (``check_key_poly``).

What the edge cannot check is that pk0 + a*s is small: that is the RLWE
assumption itself. docs/snni-he.md ("A hostile camera's key") says what a pk0
with a large hidden error still gets the camera.

Who holds what: the camera holds s and e; both hold the seed, a and pk0. SEAL
draws a key's a and its noise from one PRNG (KeyGenerator), so a key for a
given a is made from SEAL operations instead: Z = SEAL's symmetric encryption
of zero, (-(a' s + e), a'), and pk0 = z0 + (a' - a)*s, one product by s in the
NTT domain by SEAL's Evaluator. Then pk0 + a*s = -e, with s and e from SEAL's
own sampler and CSPRNG. The key lives at the working level (the edge never
used the special prime).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from secfepas_sdk.errors import PeerDataError, SnniError
from secfepas_sdk.snni.he import sealio
from secfepas_sdk.snni.prg import Prg

if TYPE_CHECKING:
    from secfepas_sdk.snni.he.engine import _Seal

U64 = NDArray[np.uint64]

SEED_BYTES = sealio.SEED_BYTES
# A uniform polynomial mod Q has a coefficient below Q/2^SMALL_BITS (centred)
# with probability 2^(1-SMALL_BITS), and N uniform values mod a 60-bit prime
# collide about N^2/2^61 times. An honest key passes with probability above
# 1 - 2^-1000; anything with more than N/64 such coefficients or repeats is
# zero, constant, sparse, small, or the lift of one prime's residue.
SMALL_BITS = 32
DEGENERATE_FRACTION = 64


def new_seed(prg: Prg) -> bytes:
    """The edge's fresh seed for the camera's pk1 (one per session)."""
    return prg.random_bytes(SEED_BYTES)


def _seeded(s: _Seal, c0: U64, seed: bytes) -> Any:
    """A working-level NTT-form ciphertext (c0, expand(seed)), expanded by SEAL."""
    ct = s.seal.Ciphertext(s.context)
    raw = sealio.seeded_ciphertext_bytes(
        c0, seed, parms_id=sealio.parms_id_bytes(s.first), ntt_form=True, poly_degree=s.n
    )
    s.scratch.load(ct, s.context, raw)
    return ct


def _polys(s: _Seal, ct: Any) -> U64:
    _pid, _ntt, polys = sealio.ciphertext_polys(s.scratch.save(ct))
    return polys


def expand_pk1(s: _Seal, seed: bytes) -> U64:
    """pk1 = a, NTT form (limbs, N): SEAL's expansion of ``seed`` at the working level."""
    limbs = len(s.first_moduli)
    a: U64 = _polys(s, _seeded(s, np.zeros((limbs, s.n), dtype=np.uint64), seed))[1]
    return a


def _mod(x: U64, q: U64) -> U64:
    out: U64 = x % q[:, None]
    return out


def camera_pk0(s: _Seal, secret: Any, encryptor: Any, seed: bytes) -> U64:
    """pk0 = -(a*s + e) for a = expand(seed), NTT form (limbs, N), from SEAL operations."""
    return pk0_for(s, secret, encryptor, expand_pk1(s, seed))


def pk0_for(s: _Seal, secret: Any, encryptor: Any, a: U64) -> U64:
    """pk0 = -(a*s + e) for a given NTT-form ``a`` (tests build hostile keys with it)."""
    q = s.first_moduli
    limbs = q.size
    zero = s.seal.Ciphertext(s.context)
    encryptor.encrypt_zero_symmetric(s.first, zero)  # (-(a' s + e), a'): SEAL's noise
    s.evaluator.transform_to_ntt_inplace(zero)
    z = _polys(s, zero)
    # s in NTT form at the working level: the key level's first primes.
    s_values = sealio.plaintext_coeffs(s.scratch.save(secret.data()))[: limbs * s.n]
    s_plain = s.seal.Plaintext()
    s.scratch.load(
        s_plain,
        s.context,
        sealio.ntt_plaintext_bytes(s_values, parms_id=sealio.parms_id_bytes(s.first)),
    )
    del s_values
    d = _mod(z[1] + q[:, None] - a, q)  # a' - a
    prod = s.seal.Ciphertext(s.context)
    s.scratch.load(
        prod,
        s.context,
        sealio.ciphertext_bytes(
            np.stack([d, d]),
            parms_id=sealio.parms_id_bytes(s.first),
            ntt_form=True,
            poly_degree=s.n,
        ),
    )
    s.evaluator.multiply_plain_inplace(prod, s_plain)  # ((a' - a) s, ...)
    return _mod(z[0] + _polys(s, prod)[0], q)


def _lift_centred(coeffs: U64, moduli: U64) -> list[int]:
    """|x| of each coefficient's centred CRT lift mod Q = prod(moduli)."""
    qs = [int(m) for m in moduli]
    total = 1
    for m in qs:
        total *= m
    lifted = np.zeros(coeffs.shape[1], dtype=object)
    for limb, m in zip(coeffs, qs, strict=True):
        rest = total // m
        lifted = (lifted + limb.astype(object) * (rest * pow(rest, -1, m))) % total
    return [min(int(x), total - int(x)) for x in lifted]


def check_key_poly(ntt: U64, coeff: U64, moduli: U64, name: str) -> None:
    """Refuse a key polynomial that no uniform one resembles (PeerDataError)."""
    limbs, n = ntt.shape
    if limbs != moduli.size or coeff.shape != ntt.shape:
        raise SnniError(f"{name} has {limbs} primes, expected {moduli.size}")
    if np.any(ntt >= moduli[:, None]):
        raise PeerDataError(f"the camera's public key is refused: {name} is not reduced")
    worst = n // DEGENERATE_FRACTION
    for limb in ntt:
        repeats = n - np.unique(limb).size
        if repeats > worst:
            raise PeerDataError(
                f"the camera's public key is degenerate: {name} repeats {repeats} of its "
                f"{n} NTT values (zero or constant?)"
            )
    total = 1
    for m in moduli:
        total *= int(m)
    small = sum(1 for x in _lift_centred(coeff, moduli) if x < total >> SMALL_BITS)
    if small > worst:
        raise PeerDataError(
            f"the camera's public key is degenerate: {name} has {small} of its {n} "
            f"coefficients below q/2^{SMALL_BITS} (zero, sparse or small)"
        )


def edge_public_key(s: _Seal, pk0: U64, seed: bytes) -> Any:
    """The camera's key (pk0, expand(seed)) as a working-level NTT-form ciphertext,
    after refusing a degenerate pk0. pk1 is the edge's own expansion of its seed."""
    q = s.first_moduli
    if pk0.shape != (q.size, s.n):
        raise PeerDataError(f"the camera's pk0 has shape {pk0.shape}, expected {(q.size, s.n)}")
    if np.any(pk0 >= q[:, None]):
        raise PeerDataError("the camera's public key is refused: pk0 is not reduced")
    key = _seeded(s, pk0, seed)  # SEAL expands pk1 from our seed
    ntt = _polys(s, key)
    coeff_ct = s.seal.Ciphertext(s.context)
    s.evaluator.transform_from_ntt(key, coeff_ct)
    coeff = _polys(s, coeff_ct)
    if not np.array_equal(ntt[0], pk0):
        raise SnniError("SEAL changed pk0 while loading the key")
    for i, name in enumerate(("pk0", "pk1")):
        check_key_poly(ntt[i], coeff[i], q, name)
    return key
