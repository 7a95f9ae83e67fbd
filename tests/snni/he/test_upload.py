"""Bit-packed uploads (bfv-n8192-q200): the same residues and seed as SEAL's bytes,
fewer bytes, and every malformed upload refused before SEAL sees it."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from secfepas_sdk.errors import PeerDataError, SnniError
from secfepas_sdk.snni.channel import ChannelError, run_pair
from secfepas_sdk.snni.he import sealio
from secfepas_sdk.snni.he.blobs import pack_blobs
from secfepas_sdk.snni.he.engine import HeClient, HeServer
from secfepas_sdk.snni.he.layers import ConvLayer, ConvSpec
from secfepas_sdk.snni.he.params import BFV_N8192_Q200, BFV_N8192_Q218
from secfepas_sdk.snni.he.upload import UploadCodec
from secfepas_sdk.snni.prg import Prg
from secfepas_sdk.snni.ring import Ring

RING = Ring(bits=37, frac_bits=12)
N = BFV_N8192_Q200.poly_degree


@pytest.fixture(scope="module")
def client() -> HeClient:
    camera = HeClient(BFV_N8192_Q200, RING)
    yield camera
    camera.close()


def _codec(client: HeClient) -> UploadCodec:
    upload = client._s.upload
    assert upload is not None
    return upload


def test_an_upload_is_the_seeded_ciphertexts_residues_and_seed(client: HeClient) -> None:
    polys = RING.random(Prg(), (2, N))
    saved = client.encrypt(polys)
    wire = client.uploads(polys[:1])
    codec = _codec(client)
    assert codec.widths == [60, 51, 51]
    assert codec.size == N * 162 // 8 + 64 == 165_952 == len(wire[0])
    assert len(saved[0]) > 186_000  # SEAL's own save of the same ciphertext
    parms, ntt, c0, prng, seed = sealio.seeded_ciphertext_parts(saved[1])
    rebuilt = sealio.seeded_ciphertext_parts(codec.decode(codec.encode(saved[1])))
    assert rebuilt[:2] == (parms, ntt) and np.array_equal(rebuilt[2], c0)
    assert rebuilt[3:] == (prng, seed) == (sealio.PRNG_BLAKE2XB, seed)
    assert sealio.is_seeded_ciphertext(codec.decode(wire[0]))


@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_encode_then_decode_gives_back_the_same_bytes(
    client: HeClient, data: st.DataObject
) -> None:
    codec = _codec(client)
    seed = data.draw(st.binary(min_size=64, max_size=64))
    fill = data.draw(st.sampled_from(["random", "zero", "top"]))
    moduli = codec.moduli[:, None]
    if fill == "random":
        rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
        c0 = (rng.integers(0, 2**63, size=(3, N), dtype=np.uint64) % moduli).astype(np.uint64)
    elif fill == "zero":
        c0 = np.zeros((3, N), dtype=np.uint64)
    else:
        c0 = np.broadcast_to(moduli - np.uint64(1), (3, N)).copy()
    saved = sealio.seeded_ciphertext_bytes(
        c0, seed, parms_id=codec.parms_id, ntt_form=False, poly_degree=N
    )
    wire = codec.encode(saved)
    assert len(wire) == codec.size and wire.endswith(seed)
    assert codec.decode(wire) == saved


def test_the_edge_refuses_a_wrong_size_or_a_residue_no_prime_gives(client: HeClient) -> None:
    codec = _codec(client)
    wire = client.uploads(RING.random(Prg(), (1, N)))[0]
    for bad in (wire[:-1], wire + b"\0", b""):
        with pytest.raises(PeerDataError, match="bytes, the plan implies"):
            codec.decode(bad)
    # the first residue of the second prime set to all ones (2^51 - 1 >= q1)
    start = -(-N * 60 // 8)
    top = bytearray(wire)
    top[start : start + 6] = b"\xff" * 6
    top[start + 6] |= 0x07
    with pytest.raises(PeerDataError, match="out of range"):
        codec.decode(bytes(top))


def test_the_camera_encodes_only_its_own_fresh_seeded_ciphertexts(client: HeClient) -> None:
    codec = _codec(client)
    saved = client.encrypt(RING.random(Prg(), (1, N)))[0]
    parms, _ntt, c0, _prng, seed = sealio.seeded_ciphertext_parts(saved)
    full = sealio.ciphertext_bytes(
        np.stack([c0, c0]), parms_id=parms, ntt_form=False, poly_degree=N
    )
    with pytest.raises(SnniError, match="seeded form"):
        codec.encode(full)
    other = sealio.seeded_ciphertext_bytes(
        c0, seed, parms_id=bytes(32), ntt_form=False, poly_degree=N
    )
    with pytest.raises(SnniError, match="working level"):
        codec.encode(other)


def test_an_edge_on_q200_refuses_seal_format_uploads() -> None:
    """A camera sending SEAL's bytes to a q200 layer is refused by the message bound
    (one 16-blob chunk of packed uploads); on q218 the uploads stay SEAL's (plans
    compiled before keep their wire)."""
    assert BFV_N8192_Q218.packed_uploads is False
    spec = ConvSpec(in_shape=(2, 6, 6), out_channels=2, kernel=(3, 3), pads=(1, 1, 1, 1))
    layer = ConvLayer(spec, N)
    w = np.ones((2, 2, 3, 3), dtype=np.int64)
    x0, x1 = RING.share(RING.random(Prg(), spec.in_shape), Prg())
    camera, edge = HeClient(BFV_N8192_Q200, RING), HeServer(BFV_N8192_Q200, RING)
    try:
        run_pair(camera.setup, edge.setup)
        prepared = edge.prepare(layer.layout, layer.kernel_polys(w), layer.l1_bound(w))

        def send_seal_bytes(ch) -> None:
            ch.send(pack_blobs(camera.encrypt(layer.pack(x0))))

        with pytest.raises(ChannelError, match="exceeds the 165960 bound"):
            run_pair(send_seal_bytes, lambda ch: edge.linear(ch, prepared, layer.pack(x1)))
    finally:
        camera.close()
        edge.close()
