"""The reply encoding: bit packing, the camera's coefficients, and the noise room."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from secfepas_sdk.errors import PeerDataError
from secfepas_sdk.snni.he.flooding import drop_bits, noise_room
from secfepas_sdk.snni.he.layers import ConvLayer, ConvSpec, MatmulLayer
from secfepas_sdk.snni.he.params import BFV_N8192, BFV_N8192_Q218
from secfepas_sdk.snni.he.reply import (
    ReplyCodec,
    ReplyFormat,
    output_positions,
    pack_bits,
    unpack_bits,
)

N = 8192
Q0 = 1152921504606683137  # SEAL's first 60-bit prime for N = 8192


@settings(max_examples=60, deadline=None)
@given(
    width=st.integers(1, 64),
    seed=st.integers(0, 2**32 - 1),
    count=st.integers(0, 300),
)
def test_pack_bits_round_trips_at_any_width(width: int, seed: int, count: int) -> None:
    rng = np.random.default_rng(seed)
    values = rng.integers(0, 2**width, count, dtype=np.uint64, endpoint=False)
    if count:
        values[0] = (1 << width) - 1  # every bit set
    raw = pack_bits(values, width)
    assert len(raw) == (count * width + 7) // 8
    assert np.array_equal(unpack_bits(raw, count, width), values)
    # The same stream as the obvious bit-by-bit packing.
    bits = [(int(v) >> i) & 1 for v in values for i in range(width)]
    assert raw == np.packbits(np.asarray(bits, dtype=np.uint8), bitorder="little").tobytes()


def test_positions_are_the_layouts_output_coefficients() -> None:
    layer = ConvLayer(ConvSpec(in_shape=(3, 20, 20), out_channels=5, kernel=(3, 3)), N)
    keep = output_positions(layer.layout)
    assert len(keep) == layer.layout.n_out
    flat = np.concatenate([k * N + p for k, p in enumerate(keep)])
    assert np.array_equal(np.sort(flat), np.sort(layer.layout.out_index))
    assert all(np.all(np.diff(p) > 0) for p in keep)


def test_codec_keeps_c1_and_the_output_coefficients_of_c0() -> None:
    from secfepas_sdk.snni.he import sealio

    layer = MatmulLayer(100, 7, N)
    codec = ReplyCodec(layer.layout, Q0, ReplyFormat(c0_drop=20, c1_drop=8))
    rng = np.random.default_rng(0)
    polys = rng.integers(0, Q0, (2, 1, N), dtype=np.uint64)
    polys[:, 0, :2] = [Q0 - 1, 0]  # the ends of the range
    saved = sealio.ciphertext_bytes(polys, parms_id=bytes(32), ntt_form=False, poly_degree=N)
    raw = codec.encode(saved, 0)
    keep = codec.keep[0]
    assert keep.size == 7 and len(raw) == codec.size(0) == N * 52 // 8 + (7 * 40 + 7) // 8
    got = codec.decode(raw, 0)
    err1 = (got[1].astype(object) - polys[1, 0].astype(object) + Q0 // 2) % Q0 - Q0 // 2
    assert max(abs(int(e)) for e in err1) <= 1 << 7  # at most 2^(d1-1) off, mod q0
    err0 = (got[0, keep].astype(object) - polys[0, 0, keep].astype(object) + Q0 // 2) % Q0
    assert max(abs(int(e) - Q0 // 2) for e in err0) <= 1 << 19
    others = np.setdiff1d(np.arange(N), keep)
    assert not got[0, others].any() and np.all(got < Q0)


def test_codec_refuses_what_an_honest_edge_cannot_send() -> None:
    layer = MatmulLayer(10, 3, N)
    codec = ReplyCodec(layer.layout, Q0, ReplyFormat(c0_drop=0, c1_drop=0))
    with pytest.raises(PeerDataError, match="bytes"):
        codec.decode(b"\0" * (codec.size(0) - 1), 0)
    too_big = pack_bits(np.full(N, Q0, dtype=np.uint64), 60) + pack_bits(
        np.zeros(3, dtype=np.uint64), 60
    )
    with pytest.raises(PeerDataError, match="out of range"):
        codec.decode(too_big, 0)


@pytest.mark.parametrize("params", [BFV_N8192, BFV_N8192_Q218])
def test_drops_fit_the_noise_room_and_use_it(params) -> None:
    flood = params.flood_bits(37) - 20  # a budget's flood, below the most
    d0, d1 = drop_bits(params, 37, flood, 4000, 8192)
    room = noise_room(params, 37, flood)
    used = (1 << (d0 - 1) if d0 else 0) + (N << (d1 - 1) if d1 else 0)
    assert used <= room
    assert (d0, d1) == (20, 8)  # room 2^21 - 2^12 - ...: c0 keeps 40 bits, c1 52
    # At the most a set allows the flood itself takes half the room.
    d0, d1 = drop_bits(params, 37, params.flood_bits(37), 4000, 8192)
    assert (1 << (d0 - 1)) + (N << (d1 - 1)) <= noise_room(params, 37, params.flood_bits(37))
    assert (d0, d1) == (19, 7)
