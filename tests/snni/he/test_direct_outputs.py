"""c0 gathered at the output coefficients (trimmed replies): the same coefficients as
the whole product, so the same reply bytes as SEAL's path and the full direct path."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from testkit.he import (
    CONV_SPECS,
    RING,
    SERVER_SEED,
    Case,
    SplitInProcess,
    camera_messages,
    replay,
    ring_conv,
)

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
@pytest.mark.parametrize("name", list(CONV_SPECS))
def test_trimmed_replies_are_the_same_bytes_on_every_path(
    params: HeParams, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SEAL's products, the full direct product and the gathered c0 (in one process
    and in two block parts fed residues): byte-identical trimmed replies, and the
    camera's share plus the edge's is W x."""
    spec = CONV_SPECS[name]
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
        assert np.array_equal(RING.add(share, y1), ring_conv(spec, w, x))
    finally:
        client.close()
