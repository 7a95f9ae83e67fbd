"""HE conv and matmul against numpy, exactly in the ring, on random shapes."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from secfepas_sdk.errors import InvalidValueError, SnniError
from secfepas_sdk.snni.channel import run_pair
from secfepas_sdk.snni.he.blobs import pack_blobs, unpack_blobs
from secfepas_sdk.snni.he.engine import HeClient, HeServer
from secfepas_sdk.snni.he.layers import ConvLayer, ConvSpec, MatmulLayer
from secfepas_sdk.snni.he.packing import ConvPacking
from secfepas_sdk.snni.he.params import (
    BFV_N8192,
    BFV_N8192_Q200,
    BFV_N8192_Q218,
    HeParams,
    check_layer_noise,
    get_params,
)
from secfepas_sdk.snni.he.prices import EDGE_TIME, TilingPrices
from secfepas_sdk.snni.he.reply import ReplyFormat
from secfepas_sdk.snni.prg import Prg
from secfepas_sdk.snni.ring import Ring

RING = Ring(bits=37, frac_bits=12)
N = BFV_N8192.poly_degree


@pytest.fixture(scope="module")
def parties() -> tuple[HeClient, HeServer]:
    client = HeClient(BFV_N8192, RING)
    server = HeServer(BFV_N8192, RING)
    run_pair(client.setup, server.setup)
    yield client, server
    client.close()
    server.close()


def ref_conv(x: np.ndarray, w: np.ndarray, spec: ConvSpec) -> np.ndarray:
    c, h, wd = spec.in_shape
    t, left, b, r = spec.pads
    xp = np.zeros((c, h + t + b, wd + left + r), dtype=np.int64)
    xp[:, t : t + h, left : left + wd] = RING.to_signed(x)
    m, ho, wo = spec.out_shape
    cg, mg = c // spec.groups, m // spec.groups
    kh, kw = spec.kernel
    sh, sw = spec.stride
    y = np.zeros((m, ho, wo), dtype=np.int64)
    for o in range(m):
        g = o // mg
        for di in range(kh):
            for dj in range(kw):
                patch = xp[
                    g * cg : (g + 1) * cg,
                    di : di + sh * (ho - 1) + 1 : sh,
                    dj : dj + sw * (wo - 1) + 1 : sw,
                ]
                y[o] += np.tensordot(w[o, :, di, dj], patch, axes=(0, 0))
    return RING.reduce(y)


def secure(parties, layer, w, x):
    client, server = parties
    prg = Prg()
    x0, x1 = RING.share(x, prg)
    prepared = server.prepare(layer.layout, layer.kernel_polys(w), layer.l1_bound(w))
    y0, y1 = run_pair(
        lambda ch: client.linear(ch, layer.layout, layer.pack(x0)),
        lambda ch: server.linear(ch, prepared, layer.pack(x1)),
    )
    return RING.add(y0, y1)


def weights(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    w = rng.integers(-(1 << 13), 1 << 13, size=shape, dtype=np.int64)
    flat = w.reshape(-1)
    flat[: min(2, flat.size)] = [(1 << 13) - 1, -(1 << 13)][: min(2, flat.size)]
    return w


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    c=st.integers(1, 6),
    hw=st.tuples(st.integers(1, 20), st.integers(1, 20)),
    k=st.tuples(st.integers(1, 4), st.integers(1, 4)),
    stride=st.tuples(st.integers(1, 3), st.integers(1, 3)),
    pads=st.tuples(*[st.integers(0, 2)] * 4),
    groups_m=st.tuples(st.sampled_from([1, 2, 3]), st.integers(1, 3)),
    seed=st.integers(0, 2**32 - 1),
)
def test_conv_matches_numpy(parties, c, hw, k, stride, pads, groups_m, seed) -> None:
    groups, mg = groups_m
    c = c * groups
    h, w_ = hw
    if h + pads[0] + pads[2] < k[0] or w_ + pads[1] + pads[3] < k[1]:
        return
    spec = ConvSpec(
        in_shape=(c, h, w_),
        out_channels=mg * groups,
        kernel=k,
        stride=stride,
        pads=pads,
        groups=groups,
    )
    rng = np.random.default_rng(seed)
    w = weights(rng, (spec.out_channels, c // groups, *k))
    x = RING.random(Prg(), spec.in_shape)
    edge = np.asarray([0, RING.modulus - 1, 1 << 36], dtype=np.uint64)  # 0, -1, most negative
    x.reshape(-1)[: min(3, x.size)] = edge[: min(3, x.size)]
    assert np.array_equal(
        secure(parties, ConvLayer(spec, N), w, x).reshape(spec.out_shape), ref_conv(x, w, spec)
    )


def test_depthwise_and_large_tiled_conv(parties) -> None:
    rng = np.random.default_rng(1)
    for spec in (
        ConvSpec(in_shape=(8, 9, 9), out_channels=8, kernel=(3, 3), pads=(1, 1, 1, 1), groups=8),
        ConvSpec(
            in_shape=(3, 96, 96), out_channels=4, kernel=(7, 7), stride=(2, 2), pads=(3, 3, 3, 3)
        ),
    ):
        layer = ConvLayer(spec, N)
        w = weights(rng, (spec.out_channels, spec.in_shape[0] // spec.groups, *spec.kernel))
        x = RING.random(Prg(), spec.in_shape)
        got = secure(parties, layer, w, x).reshape(spec.out_shape)
        assert np.array_equal(got, ref_conv(x, w, spec))
    assert layer.layout.n_in > 1  # the 96x96 input needs several tiles


@pytest.mark.parametrize(("k", "m"), [(1, 1), (100, 10), (5000, 7), (1000, 40)])
def test_matmul_matches_numpy(parties, k: int, m: int) -> None:
    rng = np.random.default_rng(k + m)
    w = weights(rng, (m, k))
    x = RING.random(Prg(), (k,))
    layer = MatmulLayer(k, m, N)
    assert np.array_equal(secure(parties, layer, w, x), RING.reduce(w @ RING.to_signed(x)))


def test_reply_noise_budget_is_positive(parties) -> None:
    """A flooded, mod-switched reply still has budget left (checked by SEAL itself)."""
    client, server = parties
    layer = MatmulLayer(64, 4, N)
    w = weights(np.random.default_rng(0), (4, 64))
    prepared = server.prepare(layer.layout, layer.kernel_polys(w), layer.l1_bound(w))
    captured: list[bytes] = []

    def cl(ch):
        ch.send(pack_blobs(client.encrypt(layer.pack(RING.random(Prg(), (64,))))))
        raw = ch.recv()
        captured.extend(unpack_blobs(raw, count=layer.layout.n_out, max_each=1 << 20))

    run_pair(cl, lambda ch: server.linear(ch, prepared, layer.pack(RING.random(Prg(), (64,)))))
    assert all(client.noise_budget(b) > 0 for b in captured)


def test_noise_check_refuses_huge_weights() -> None:
    flood, sigma = check_layer_noise(BFV_N8192, 37, 1e6)
    assert flood == 120 - 37 - 4 and sigma >= 40
    with pytest.raises(SnniError, match="noise budget"):
        check_layer_noise(BFV_N8192, 37, 2.0**40)


def test_unknown_param_set() -> None:
    with pytest.raises(SnniError, match="bfv-n8192-q180"):
        get_params("nope")


def test_bad_peer_messages_are_refused() -> None:
    raw = pack_blobs([b"abc", b"de"])
    assert unpack_blobs(raw, count=2, max_each=10) == [b"abc", b"de"]
    with pytest.raises(SnniError):
        unpack_blobs(raw, count=3, max_each=10)
    with pytest.raises(SnniError):
        unpack_blobs(raw, count=2, max_each=2)
    with pytest.raises(SnniError):
        unpack_blobs(raw[:-1], count=2, max_each=10)


def test_garbage_ciphertext_is_refused(parties) -> None:
    _client, server = parties
    layer = MatmulLayer(8, 2, N)
    w = weights(np.random.default_rng(0), (2, 8))
    prepared = server.prepare(layer.layout, layer.kernel_polys(w), layer.l1_bound(w))
    x = layer.pack(RING.random(Prg(), (8,)))

    def cl(ch):
        ch.send(pack_blobs([b"\x5e\xa1" + bytes(200)]))

    with pytest.raises(SnniError):
        run_pair(cl, lambda ch: server.linear(ch, prepared, x), timeout_s=20)


def test_kernel_source_matches_full_array_and_uncached_run(parties) -> None:
    spec = ConvSpec(in_shape=(6, 7, 7), out_channels=10, kernel=(3, 3), pads=(1, 1, 1, 1), groups=2)
    layer = ConvLayer(spec, N)
    w = weights(np.random.default_rng(9), (10, 3, 3, 3))
    full = layer.kernel_polys(w)
    source = layer.kernel_source(w)
    assert all(np.array_equal(full[k], source(k)) for k in range(layer.layout.n_kernels))
    client, server = parties
    prepared = server.prepare(layer.layout, source, layer.l1_bound(w), cache=False)
    x = RING.random(Prg(), spec.in_shape)
    x0, x1 = RING.share(x, Prg())
    y0, y1 = run_pair(
        lambda ch: client.linear(ch, layer.layout, layer.pack(x0)),
        lambda ch: server.linear(ch, prepared, layer.pack(x1)),
    )
    assert np.array_equal(RING.add(y0, y1).reshape(spec.out_shape), ref_conv(x, w, spec))


def test_strided_pointwise_conv_and_zero_kernels(parties) -> None:
    """A 1x1 stride-2 conv keeps one polyphase component; all-zero kernels are skipped."""
    rng = np.random.default_rng(11)
    spec = ConvSpec(in_shape=(8, 9, 9), out_channels=6, kernel=(1, 1), stride=(2, 2))
    layer = ConvLayer(spec, N)
    assert spec.group_in_channels == 8
    w = weights(rng, (6, 8, 1, 1))
    w[:3] = 0  # a pruned block of output channels
    x = RING.random(Prg(), spec.in_shape)
    got = secure(parties, layer, w, x).reshape(spec.out_shape)
    assert np.array_equal(got, ref_conv(x, w, spec))
    w[:] = 0
    assert np.array_equal(secure(parties, layer, w, x), np.zeros(6 * 5 * 5, dtype=np.uint64))


@pytest.mark.parametrize(("c", "hw", "stride"), [(37, 7, 1), (19, 14, 2), (5, 20, 1), (24, 28, 2)])
def test_depthwise_packs_several_channels_per_polynomial(parties, c, hw, stride) -> None:
    """A depthwise conv is one block-diagonal conv: several channels per ciphertext each
    way and one product per output ciphertext, exact against numpy."""
    spec = ConvSpec(
        in_shape=(c, hw, hw), out_channels=c, kernel=(3, 3), stride=(stride, stride),
        pads=(1, 1, 1, 1), groups=c,
    )  # fmt: skip
    rng = np.random.default_rng(c)
    w = weights(rng, (c, 1, 3, 3))
    x = RING.random(Prg(), spec.in_shape)
    layer = ConvLayer(spec, N)
    assert layer.tiling["dw"] == 1
    lay = layer.layout
    assert lay.n_mul == lay.n_out  # one product per output ciphertext
    old = ConvLayer(spec, N, _per_group_tiling(spec))
    if hw <= 14:
        assert lay.n_in * 3 <= old.layout.n_in and lay.n_out * 3 <= old.layout.n_out
    assert np.array_equal(
        secure(parties, layer, w, x).reshape(spec.out_shape), ref_conv(x, w, spec)
    )
    # A plan pinned before (no "dw": one group per polynomial) still computes the same.
    assert not old.depthwise
    assert np.array_equal(secure(parties, old, w, x).reshape(spec.out_shape), ref_conv(x, w, spec))


def _per_group_tiling(spec: ConvSpec) -> dict[str, int]:
    from secfepas_sdk.snni.he.packing import ConvPacking

    hp, wp = spec.phase_size
    kh, kw = spec.phase_kernel
    p = ConvPacking.choose(
        channels=spec.group_in_channels, height=hp, width=wp, out_channels=1, kh=kh, kw=kw, n=N
    )
    return {"cp": p.cp, "th": p.th, "tw": p.tw, "no": p.no}


@pytest.mark.parametrize("flood_bits", [None, 100])
@pytest.mark.parametrize("params", [BFV_N8192_Q200, BFV_N8192_Q218], ids=lambda p: p.name)
def test_larger_set_with_a_sized_flood_is_exact_and_decrypts(
    params: HeParams, flood_bits: int | None
) -> None:
    """The sets with three working primes (q200's uploads bit-packed), flooded at the
    most (2^(D-l-4)) or at a flood sized to a budget: exact against numpy, and SEAL
    still sees noise budget left."""
    client, server = HeClient(params, RING), HeServer(params, RING)
    try:
        run_pair(client.setup, server.setup)
        spec = ConvSpec(in_shape=(3, 9, 9), out_channels=4, kernel=(3, 3), pads=(1, 1, 1, 1))
        layer = ConvLayer(spec, N)
        w = weights(np.random.default_rng(5), (4, 3, 3, 3))
        prepared = server.prepare(
            layer.layout, layer.kernel_polys(w), layer.l1_bound(w), flood_bits=flood_bits
        )
        most = params.flood_bits(RING.bits)
        assert prepared.flood_bits == (most if flood_bits is None else flood_bits)
        x = RING.random(Prg(), spec.in_shape)
        x0, x1 = RING.share(x, Prg())
        captured: list[bytes] = []

        def camera(ch):
            ch.send(pack_blobs(client.uploads(layer.pack(x0))))
            raw = ch.recv()
            captured.extend(unpack_blobs(raw, count=layer.layout.n_out, max_each=1 << 20))
            return np.concatenate([client.decrypt(captured)]).reshape(-1)[layer.layout.out_index]

        y0, y1 = run_pair(camera, lambda ch: server.linear(ch, prepared, layer.pack(x1)))
        assert np.array_equal(RING.add(y0, y1).reshape(spec.out_shape), ref_conv(x, w, spec))
        assert all(client.noise_budget(b) > 0 for b in captured)
        with pytest.raises(SnniError, match="2\\^-40"):
            server.prepare(layer.layout, layer.kernel_polys(w), layer.l1_bound(w), flood_bits=60)
    finally:
        client.close()
        server.close()


@pytest.mark.parametrize(
    "fmt", [ReplyFormat(c0_drop=20, c1_drop=8), ReplyFormat(c0_drop=0, c1_drop=0)]
)
def test_trimmed_replies_leave_the_cameras_shares_unchanged(fmt: ReplyFormat) -> None:
    """The same edge randomness, replies as SEAL ciphertexts or trimmed (c0 only at the
    outputs, low bits dropped): the camera decrypts the same share, bit for bit, and
    the shares still add up to W x; the trimmed replies are smaller."""
    spec = ConvSpec(in_shape=(5, 14, 14), out_channels=6, kernel=(3, 3), pads=(1, 1, 1, 1))
    layer = ConvLayer(spec, N)
    rng = np.random.default_rng(3)
    w = weights(rng, (6, 5, 3, 3))
    x = RING.random(Prg(), spec.in_shape)
    x.reshape(-1)[:3] = [0, RING.modulus - 1, 1 << 36]
    x0, x1 = RING.share(x, Prg())
    results = []
    client = HeClient(BFV_N8192_Q218, RING)
    try:
        for trimmed in (False, True):
            server = HeServer(BFV_N8192_Q218, RING, prg=Prg(bytes(16)))
            try:
                run_pair(client.setup, server.setup)
                prepared = server.prepare(
                    layer.layout, layer.kernel_polys(w), layer.l1_bound(w), flood_bits=110,
                    reply=fmt if trimmed else None,
                )  # fmt: skip
                codec = client.codec(layer.layout, fmt) if trimmed else None

                def camera(ch, c=codec):
                    return client.linear(ch, layer.layout, layer.pack(x0), c), ch.stats

                (y0, stats), y1 = run_pair(
                    camera, lambda ch, p=prepared, sv=server: sv.linear(ch, p, layer.pack(x1))
                )
                results.append((y0, y1, stats.bytes_received))
            finally:
                server.close()
    finally:
        client.close()
    (full0, full1, full_bytes), (trim0, trim1, trim_bytes) = results
    assert np.array_equal(trim0, full0) and np.array_equal(trim1, full1)
    assert np.array_equal(RING.add(trim0, trim1).reshape(spec.out_shape), ref_conv(x, w, spec))
    assert trim_bytes < full_bytes


def test_tiling_prices_for_a_slow_link_trade_uploads_for_replies() -> None:
    """ResNet50's 1x1 512 -> 2048 conv at 7x7: priced for a 100 Mbit/s camera link the
    search takes fewer, fuller uploads and more replies than the edge-time default,
    and fewer bytes in all (196.8 kB per upload, about 75 kB per reply)."""
    geometry = {"channels": 512, "height": 7, "width": 7, "out_channels": 2048}
    geometry |= {"kh": 1, "kw": 1, "n": 8192}
    edge = ConvPacking.choose(**geometry)
    slow = ConvPacking.choose(**geometry, prices=TilingPrices.for_link(100))
    assert slow.n_in < edge.n_in and slow.n_out > edge.n_out
    assert 196.8 * slow.n_in + 75 * slow.n_out < 196.8 * edge.n_in + 75 * edge.n_out
    assert ConvPacking.choose(**geometry, prices=EDGE_TIME) == edge
    fast = TilingPrices.for_link(1000)
    assert fast.per_input == pytest.approx(3.0 + 2.5 + 1.5744)
    assert fast.per_reply == pytest.approx(9.6 + 2.0 + 0.6)
    with pytest.raises(InvalidValueError):
        TilingPrices.for_link(0)
    with pytest.raises(InvalidValueError):
        TilingPrices(per_input=-1.0)


@pytest.mark.parametrize(("c", "hw", "stride"), [(24, 14, 1), (12, 56, 2)])
def test_depthwise_on_a_slow_link_shares_input_polynomials(parties, c, hw, stride) -> None:
    """Priced for a camera's link, an input polynomial holds the channels of several
    output blocks (cp = m * no * P, m > 1): fewer uploads than replies, still one product
    per output ciphertext, exact against numpy; the pinned tiling rebuilds the same."""
    spec = ConvSpec(
        in_shape=(c, hw, hw), out_channels=c, kernel=(3, 3), stride=(stride, stride),
        pads=(1, 1, 1, 1), groups=c,
    )  # fmt: skip
    layer = ConvLayer(spec, N, prices=TilingPrices.for_link(100.0))
    p, phases = layer.packing, stride * stride
    assert p.cp % (p.no * phases) == 0 and p.cp > p.no * phases
    lay = layer.layout
    assert lay.n_in < lay.n_out and lay.n_mul == lay.n_out
    rng = np.random.default_rng(c + hw)
    w = weights(rng, (c, 1, 3, 3))
    x = RING.random(Prg(), spec.in_shape)
    want = ref_conv(x, w, spec)
    assert np.array_equal(secure(parties, layer, w, x).reshape(spec.out_shape), want)
    pinned = ConvLayer(spec, N, layer.tiling)
    assert pinned.packing == p and pinned.layout.terms == lay.terms
