"""c0 gathered at the output coefficients (trimmed replies): the same coefficients as
the whole product, so the same reply bytes as SEAL's path and the full direct path."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from testkit.he import RING, SERVER_SEED, Case, SplitInProcess, camera_messages, replay

from secfepas_sdk.errors import SnniError
from secfepas_sdk.snni.channel import run_pair
from secfepas_sdk.snni.he import direct, direct_outputs
from secfepas_sdk.snni.he.direct import shift_recombine_numpy
from secfepas_sdk.snni.he.direct_outputs import OutputGather
from secfepas_sdk.snni.he.engine import HeClient, HeServer
from secfepas_sdk.snni.he.layers import ConvLayer, ConvSpec
from secfepas_sdk.snni.he.limbs import limb_bits, limb_count, split_limbs
from secfepas_sdk.snni.he.params import BFV_N8192_Q200, BFV_N8192_Q218, HeParams
from secfepas_sdk.snni.he.reply import ReplyFormat
from secfepas_sdk.snni.prg import Prg

N = BFV_N8192_Q200.poly_degree
FMT = ReplyFormat(c0_drop=20, c1_drop=8)
SPECS = {
    "1x1": ConvSpec(in_shape=(40, 7, 7), out_channels=12, kernel=(1, 1)),
    "3x3-stride2": ConvSpec(
        in_shape=(6, 9, 9), out_channels=5, kernel=(3, 3), stride=(2, 2), pads=(1, 1, 1, 1)
    ),
    "3x3": ConvSpec(in_shape=(12, 10, 10), out_channels=8, kernel=(3, 3), pads=(1, 1, 1, 1)),
    "depthwise": ConvSpec(
        in_shape=(9, 8, 8), out_channels=9, kernel=(3, 3), pads=(1, 1, 1, 1), groups=9
    ),
}


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    support=st.integers(1, 7),
    outputs=st.integers(1, 16),
    members=st.integers(1, 3),
    l1_log2=st.integers(0, 36),
)
def test_gathered_c0_is_the_whole_products_at_the_outputs(
    seed: int, support: int, outputs: int, members: int, l1_log2: int
) -> None:
    """Random residues, weights up to the exact bound, against the full negacyclic
    product (numpy) read at the chosen coefficients, with wrapping positions."""
    n, inputs, q = 32, 3, (1 << 59) - 55
    rng = np.random.default_rng(seed)
    positions = np.sort(rng.choice(n, size=support, replace=False)).astype(np.int64)
    at = np.sort(rng.choice(n, size=outputs, replace=False)).astype(np.int64)
    top = 2**l1_log2
    bits = limb_bits(top * inputs * support)
    limbs = limb_count(bits)
    w = rng.integers(-top, top + 1, size=(members * support, inputs)).astype(np.float64)
    x = rng.integers(0, q, size=(inputs, n), dtype=np.uint64)
    x[0, :2] = [0, q - 1]
    xs = split_limbs(x, q, bits, limbs)  # (inputs, limbs, n)
    z = (w @ xs.reshape(inputs, limbs * n)).reshape(members, support, limbs, n)
    full = np.empty((members, n), dtype=np.uint64)
    shift_recombine_numpy(z, positions, q, bits, full)
    got = OutputGather(positions, at, n).product(w, xs, q, bits)
    assert np.array_equal(got, full[:, at])


def test_the_gather_refuses_coefficients_outside_the_polynomial() -> None:
    with pytest.raises(SnniError, match="outside"):
        OutputGather(np.array([0, 3]), np.array([1, 8]), 8)
    with pytest.raises(SnniError, match="outside"):
        OutputGather(np.array([-1]), np.array([1]), 8)
    assert direct_outputs.worth_it(N // 2, N) and not direct_outputs.worth_it(N // 2 + 1, N)


def _weights(spec: ConvSpec, seed: int) -> np.ndarray:
    c, m = spec.in_shape[0] // spec.groups, spec.out_channels
    w = np.random.default_rng(seed).integers(-(1 << 10), 1 << 10, size=(m, c, *spec.kernel))
    w[0] = 0  # a zero kernel: SEAL's path skips it
    return w.astype(np.int64)


@pytest.mark.parametrize("params", [BFV_N8192_Q200, BFV_N8192_Q218], ids=lambda p: p.name)
@pytest.mark.parametrize("name", list(SPECS))
def test_trimmed_replies_are_the_same_bytes_on_every_path(
    params: HeParams, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SEAL's products, the full direct product and the gathered c0 (in one process
    and in two block parts fed residues): byte-identical trimmed replies, and the
    camera's share plus the edge's is W x."""
    spec = SPECS[name]
    layer = ConvLayer(spec, N)
    w = _weights(spec, 3)
    x = RING.random(Prg(), spec.in_shape)
    x0, x1 = RING.share(x, Prg())
    case = Case(layer=layer, w=w, x=x, x0=x0, x1=x1)
    client = HeClient(params, RING)
    try:
        messages = camera_messages(client, case)
        runs = []
        for use, gather, split in (
            (False, False, False),
            (True, False, False),
            (True, True, False),
            (True, True, True),
        ):
            monkeypatch.setattr(direct, "worth_it", lambda *a, use=use, **k: use)
            monkeypatch.setattr(direct_outputs, "worth_it", lambda *a, g=gather, **k: g)
            server = HeServer(params, RING, prg=Prg(SERVER_SEED))
            try:
                run_pair(client.setup, server.setup)
                if split:
                    server.pool = SplitInProcess(server, 2, residues=True)
                source, sparse = layer.kernel_views(w)
                prepared = server.prepare(
                    layer.layout, source, layer.l1_bound(w), cache=False, sparse=sparse,
                    flood_bits=100, reply=FMT,
                )  # fmt: skip
                assert (prepared.direct is not None) == use
                runs.append(replay(server, case, messages, prepared))
            finally:
                server.close()
        (replies, y1), *others = runs
        for other_replies, other_y1 in others:
            assert other_replies == replies
            assert np.array_equal(other_y1, y1)
        codec = client.codec(layer.layout, FMT)
        share = client.decrypt(replies, codec).reshape(-1)[layer.layout.out_index]
        got = RING.to_signed(RING.add(share, y1)).reshape(spec.out_shape)
        want = _reference(spec, w, x)
        assert np.array_equal(got, want)
    finally:
        client.close()


def _reference(spec: ConvSpec, w: np.ndarray, x: np.ndarray) -> np.ndarray:
    c, h, wd = spec.in_shape
    top, left, bottom, right = spec.pads
    xp = np.zeros((c, h + top + bottom, wd + left + right), dtype=np.int64)
    xp[:, top : top + h, left : left + wd] = RING.to_signed(x)
    m, ho, wo = spec.out_shape
    (sh, sw), (kh, kw) = spec.stride, spec.kernel
    cg, mg = c // spec.groups, m // spec.groups
    y = np.zeros((m, ho, wo), dtype=np.int64)
    for g in range(spec.groups):
        xs = xp[g * cg : (g + 1) * cg]
        for di in range(kh):
            for dj in range(kw):
                patch = xs[:, di : di + sh * ho : sh, dj : dj + sw * wo : sw]
                y[g * mg : (g + 1) * mg] += np.tensordot(
                    w[g * mg : (g + 1) * mg, :, di, dj], patch, axes=(1, 0)
                )
    return RING.to_signed(RING.reduce(y))
