"""The camera's public key: pk1 is the expansion of the edge's seed, never the
camera's choice, and the edge refuses degenerate keys (issue 10, a hostile camera)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from secfepas_sdk.errors import PeerDataError, SnniError
from secfepas_sdk.snni.channel import Channel, run_pair
from secfepas_sdk.snni.he import keys, sealio
from secfepas_sdk.snni.he.blobs import pack_blobs
from secfepas_sdk.snni.he.engine import HeClient, HeServer
from secfepas_sdk.snni.he.layers import MatmulLayer
from secfepas_sdk.snni.he.params import BFV_N8192
from secfepas_sdk.snni.prg import Prg
from secfepas_sdk.snni.ring import Ring

RING = Ring(bits=37, frac_bits=12)
N = BFV_N8192.poly_degree
PK0_BYTES = 2 * N * 8  # two working primes, N coefficients, 8 bytes each


@pytest.fixture(scope="module")
def camera() -> HeClient:
    client = HeClient(BFV_N8192, RING)
    yield client
    client.close()


def _moduli(party: Any) -> np.ndarray:
    return party._s.first_moduli


def _to_ntt(party: Any, coeff: np.ndarray) -> np.ndarray:
    """NTT form of coefficient-form polys (limbs, N), by SEAL (c1 = 1: SEAL refuses
    a ciphertext whose c1 is zero)."""
    s = party._s
    ct = s.seal.Ciphertext(s.context)
    raw = sealio.ciphertext_bytes(
        np.stack([coeff, np.ones_like(coeff)]),
        parms_id=sealio.parms_id_bytes(s.first),
        ntt_form=False,
        poly_degree=N,
    )
    s.scratch.load(ct, s.context, raw)
    s.evaluator.transform_to_ntt_inplace(ct)
    return sealio.ciphertext_polys(s.scratch.save(ct))[2][0]


def _from_signed(party: Any, values: np.ndarray) -> np.ndarray:
    """Integer coefficients (Python ints allowed) reduced mod each working prime."""
    q = [int(m) for m in _moduli(party)]
    return np.asarray([[int(v) % m for v in values] for m in q], dtype=np.uint64)


def _hostile(send: Callable[[HeClient, bytes], bytes], camera: HeClient) -> Callable[..., None]:
    """A camera that answers the edge's seed with ``send(camera, seed)``."""

    def run(ch: Channel) -> None:
        seed = ch.recv_exact(keys.SEED_BYTES)
        ch.send(send(camera, seed))

    return run


def _pk0_for_pk1_one(camera: HeClient, _seed: bytes) -> bytes:
    """The pk0 that goes with the degenerate pk1 = 1: -(s + e), a small polynomial."""
    s = camera._s
    ones = np.ones((len(s.first_moduli), N), dtype=np.uint64)  # NTT form of the constant 1
    return keys.pk0_for(s, camera._secret, camera._encryptor, ones).tobytes()


def _seal_key_with_pk1_one(camera: HeClient, seed: bytes) -> bytes:
    """v1's message: a whole key (pk0, pk1), here with pk1 = 1."""
    pk0 = np.frombuffer(_pk0_for_pk1_one(camera, seed), dtype=np.uint64)
    return pk0.tobytes() + np.ones(pk0.size, dtype=np.uint64).tobytes()


def _random_other_pk1(camera: HeClient, _seed: bytes) -> bytes:
    """An honest-looking pk0 for a pk1 of the camera's own choosing (another seed)."""
    return keys.camera_pk0(camera._s, camera._secret, camera._encryptor, bytes(64)).tobytes()


HOSTILE: dict[str, Callable[[HeClient, bytes], bytes]] = {
    "whole key with pk1 = 1": _seal_key_with_pk1_one,
    "pk0 for pk1 = 1": _pk0_for_pk1_one,
    "pk0 = 0": lambda c, s: bytes(PK0_BYTES),
    "pk0 constant": lambda c, s: np.full(2 * N, 12345, dtype=np.uint64).tobytes(),
    "pk0 not reduced": lambda c, s: np.full(2 * N, (1 << 64) - 1, dtype=np.uint64).tobytes(),
    "pk0 short": lambda c, s: bytes(PK0_BYTES - 8),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_a_hostile_camera_key_is_refused_and_no_key_is_kept(name: str, camera: HeClient) -> None:
    edge = HeServer(BFV_N8192, RING)
    with pytest.raises(SnniError, match=r"pk0|public key|exceeds|bytes") as info:
        run_pair(_hostile(HOSTILE[name], camera), edge.setup, timeout_s=60)
    if name != "whole key with pk1 = 1":  # in memory, too long is the channel's refusal
        assert isinstance(info.value, PeerDataError)
    assert edge._pk_ct is None  # nothing to re-randomise with: linear() refuses to run
    edge.close()


def test_a_key_for_a_pk1_of_the_cameras_choosing_does_not_decrypt(camera: HeClient) -> None:
    """pk1 is the edge's expansion of its own seed, whatever the camera meant: a pk0
    made for another pk1 passes the shape checks, but the camera then cannot read
    the replies (they decrypt to garbage), so it has gained nothing."""
    edge = HeServer(BFV_N8192, RING)
    run_pair(_hostile(_random_other_pk1, camera), edge.setup, timeout_s=60)
    layer = MatmulLayer(8, 2, N)
    w = np.arange(16, dtype=np.int64).reshape(2, 8) - 8
    x = RING.random(Prg(), (8,))
    x0, x1 = RING.share(x, Prg())
    prepared = edge.prepare(layer.layout, layer.kernel_polys(w), layer.l1_bound(w))
    y0, y1 = run_pair(
        lambda ch: camera.linear(ch, layer.layout, layer.pack(x0)),
        lambda ch: edge.linear(ch, prepared, layer.pack(x1)),
    )
    assert not np.array_equal(RING.add(y0, y1), RING.reduce(w @ RING.to_signed(x)))
    edge.close()


def test_an_honest_key_is_the_seed_expansion_and_decrypts(camera: HeClient) -> None:
    seed_prg = bytes(range(16))
    edge = HeServer(BFV_N8192, RING, prg=Prg(seed_prg))
    sent: list[bytes] = []

    def spy(ch: Channel) -> None:
        real = ch.send
        ch.send = lambda data: (sent.append(bytes(data)), real(data))[1]  # type: ignore[method-assign]
        camera.setup(ch)

    run_pair(spy, edge.setup)
    assert len(sent) == 1 and len(sent[0]) == PK0_BYTES  # pk0 only
    seed = Prg(seed_prg).random_bytes(keys.SEED_BYTES)  # the edge's first draw
    key = sealio.ciphertext_polys(edge._s.scratch.save(edge._pk_ct))[2]
    assert np.array_equal(key[1], keys.expand_pk1(camera._s, seed))  # pk1 = expand(seed)
    assert np.array_equal(key[0], np.frombuffer(sent[0], dtype=np.uint64).reshape(2, N))
    # (pk0, pk1) is an encryption of zero under the camera's secret with fresh noise.
    s = edge._s
    coeff = s.seal.Ciphertext(s.context)
    s.evaluator.transform_from_ntt(edge._pk_ct, coeff)
    assert camera.noise_budget(s.scratch.save(coeff)) >= 70
    edge.close()


def test_two_sessions_get_fresh_seeds_and_keys(camera: HeClient) -> None:
    edge = HeServer(BFV_N8192, RING)
    run_pair(camera.setup, edge.setup)
    first = sealio.ciphertext_polys(edge._s.scratch.save(edge._pk_ct))[2]
    run_pair(camera.setup, edge.setup)
    second = sealio.ciphertext_polys(edge._s.scratch.save(edge._pk_ct))[2]
    assert not np.array_equal(first[1], second[1]) and not np.array_equal(first[0], second[0])
    edge.close()


DEGENERATE = st.sampled_from(["zero", "constant", "small", "sparse", "monomial", "one prime"])


FIXTURE_OK = [HealthCheck.function_scoped_fixture]


@settings(max_examples=30, deadline=None, suppress_health_check=FIXTURE_OK)
@given(kind=DEGENERATE, seed=st.integers(0, 2**32 - 1))
def test_degenerate_key_polynomials_are_refused(kind: str, seed: int, camera: HeClient) -> None:
    rng = np.random.default_rng(seed)
    q = _moduli(camera)
    big = int(q[0]) * int(q[1])
    coeffs: list[int] = [0] * N
    if kind == "constant":
        coeffs[0] = int(rng.integers(1, 1 << 62))
    elif kind == "small":  # a noise-like polynomial: up to 2^80 of a 120-bit modulus
        bits = int(rng.integers(1, 80))
        coeffs = [int(v) for v in rng.integers(-(1 << min(bits, 62)), 1 << min(bits, 62), N)]
    elif kind == "sparse":  # uniform values in at most 1/8 of the coefficients
        for i in rng.choice(N, size=int(rng.integers(1, N // 8)), replace=False):
            coeffs[int(i)] = int(rng.integers(0, 1 << 62)) * int(rng.integers(0, 1 << 58))
    elif kind == "monomial":
        coeffs[int(rng.integers(0, N))] = big // 3
    elif kind == "one prime":  # both residues equal: the lift of a value below q0
        coeffs = [int(v) for v in rng.integers(0, int(q[0]) // 2, N)]
    coeff = _from_signed(camera, coeffs)
    with pytest.raises(PeerDataError, match="degenerate"):
        keys.check_key_poly(_to_ntt(camera, coeff), coeff, q, "pk0")


@settings(max_examples=10, deadline=None, suppress_health_check=FIXTURE_OK)
@given(seed=st.integers(0, 2**32 - 1))
def test_uniform_key_polynomials_pass(seed: int, camera: HeClient) -> None:
    rng = np.random.default_rng(seed)
    q = _moduli(camera)
    coeff = np.stack([rng.integers(0, int(m), N, dtype=np.uint64) for m in q])
    keys.check_key_poly(_to_ntt(camera, coeff), coeff, q, "pk0")


def test_an_unreduced_polynomial_is_refused(camera: HeClient) -> None:
    q = _moduli(camera)
    ntt = np.stack([np.full(N, m, dtype=np.uint64) for m in q])
    with pytest.raises(PeerDataError, match="not reduced"):
        keys.check_key_poly(ntt, ntt, q, "pk1")


def _unseeded(camera: HeClient, blob: bytes) -> bytes:
    """The same ciphertext saved in full: SEAL expands the seed on load, and a full
    ciphertext's c1 is whatever its sender wrote (say 2^100, to read kernels off c1)."""
    s = camera._s
    ct = s.seal.Ciphertext(s.context)
    s.scratch.load(ct, s.context, blob)
    return s.scratch.save(ct)


def test_input_ciphertexts_must_be_seeded(camera: HeClient) -> None:
    edge = HeServer(BFV_N8192, RING)
    run_pair(camera.setup, edge.setup)
    layer = MatmulLayer(8, 2, N)
    w = np.arange(16, dtype=np.int64).reshape(2, 8) - 8
    prepared = edge.prepare(layer.layout, layer.kernel_polys(w), layer.l1_bound(w))
    x0, x1 = RING.share(RING.random(Prg(), (8,)), Prg())
    honest = camera.encrypt(layer.pack(x0))
    assert all(sealio.is_seeded_ciphertext(b) for b in honest)
    full = [_unseeded(camera, b) for b in honest]
    assert not any(sealio.is_seeded_ciphertext(b) for b in full)
    ours = sealio.seeded_ciphertext_bytes(
        np.zeros((2, N), np.uint64), bytes(64), parms_id=bytes(32), ntt_form=False, poly_degree=N
    )
    assert sealio.is_seeded_ciphertext(ours)
    type_at = len(ours) - keys.SEED_BYTES - 1
    assert not sealio.is_seeded_ciphertext(ours[:type_at] + b"\x07" + ours[type_at + 1 :])

    def hostile(ch: Channel) -> None:
        ch.send(pack_blobs(full))

    with pytest.raises(PeerDataError, match="not in seeded form"):
        run_pair(hostile, lambda ch: edge.linear(ch, prepared, layer.pack(x1)), timeout_s=60)
    edge.close()
