"""Kernel NTTs in bulk (one integer matrix product per layer block) give SEAL's own
NTT-form plaintexts byte for byte, so replies and shares do not change."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from testkit.he import RING, camera_messages, camera_share, conv_case, reference, replay, server_for

from secfepas_sdk.errors import SnniError
from secfepas_sdk.snni.he import bulk
from secfepas_sdk.snni.he.blocks import ntt_plain
from secfepas_sdk.snni.he.bulk import BulkNtt, SparseKernels
from secfepas_sdk.snni.he.engine import HeClient, _Seal
from secfepas_sdk.snni.he.layers import ConvLayer, ConvSpec
from secfepas_sdk.snni.he.params import BFV_N8192, BFV_N8192_Q218, HeParams

pytestmark = pytest.mark.skipif(not bulk.accelerated(), reason="needs numba (the fast extra)")
N = BFV_N8192.poly_degree
SPECS = {
    "1x1": ConvSpec(in_shape=(40, 7, 7), out_channels=12, kernel=(1, 1)),
    "3x3-stride2": ConvSpec(
        in_shape=(6, 9, 9), out_channels=5, kernel=(3, 3), stride=(2, 2), pads=(1, 1, 1, 1)
    ),
    "depthwise": ConvSpec(
        in_shape=(9, 8, 8), out_channels=9, kernel=(3, 3), pads=(1, 1, 1, 1), groups=9
    ),
    "groups": ConvSpec(in_shape=(8, 6, 6), out_channels=4, kernel=(1, 1), groups=2),
}


@pytest.fixture(scope="module", params=[BFV_N8192, BFV_N8192_Q218], ids=lambda p: p.name)
def seal(request: pytest.FixtureRequest) -> Iterator[_Seal]:
    params: HeParams = request.param
    s = _Seal(params, RING)
    yield s
    s.close()


def _extreme_weights(spec: ConvSpec, seed: int) -> np.ndarray:
    """Random weights with the edge values 0, -1, the largest and the most negative that
    keep each kernel polynomial's L1 norm below the bulk bound."""
    c, m = spec.in_shape[0] // spec.groups, spec.out_channels
    rng = np.random.default_rng(seed)
    w = rng.integers(-(1 << 20), 1 << 20, size=(m, c, *spec.kernel), dtype=np.int64)
    flat = w.reshape(-1)
    flat[:4] = [0, -1, (1 << 20) - 1, -(1 << 20)]
    return w


@pytest.mark.parametrize("name", list(SPECS))
def test_bulk_plaintexts_are_seals_bytes(seal: _Seal, name: str) -> None:
    spec = SPECS[name]
    layer = ConvLayer(spec, N)
    w = _extreme_weights(spec, 3)
    w[0] = 0  # an all-zero kernel polynomial: skipped on both paths
    source, sparse = layer.kernel_views(w)
    ids = list(range(layer.layout.n_kernels))
    got = BulkNtt(seal, sparse).plains(ids)
    for k, plain in zip(ids, got, strict=True):
        poly = source(k)
        if not poly.any():
            assert plain is None
            continue
        assert seal.scratch.save(plain) == seal.scratch.save(ntt_plain(seal, poly))


def test_rows_above_the_exact_bound_are_refused(seal: _Seal) -> None:
    sparse = SparseKernels(
        positions=np.arange(4, dtype=np.int64),
        rows=lambda ids: np.full((len(ids), 4), 1 << 30, dtype=np.int64),
    )
    with pytest.raises(SnniError, match="exceed"):
        BulkNtt(seal, sparse).plains([0])


def test_choice_is_from_public_geometry() -> None:
    assert bulk.worth_it(40, 2.0**20, BFV_N8192_Q218)  # a ResNet50 1x1 conv
    assert not bulk.worth_it(288, 2.0**20, BFV_N8192_Q218)  # its 3x3: SEAL's NTT is cheaper
    assert not bulk.worth_it(40, 2.0**40, BFV_N8192_Q218)  # not exact at such weights


def test_uncached_layer_gives_the_same_replies_and_exact_shares() -> None:
    """The bulk path against SEAL's per-kernel path on one camera message, byte for byte."""
    client = HeClient(BFV_N8192, RING)
    case = conv_case()
    layer = case.layer
    assert isinstance(layer, ConvLayer)
    messages = camera_messages(client, case)
    runs = []
    for sparse in (False, True):
        server = server_for(client)
        source, sp = layer.kernel_views(case.w)
        prepared = server.prepare(
            layer.layout, source, layer.l1_bound(case.w), cache=False, sparse=sp if sparse else None
        )
        assert (prepared.sparse is not None) == sparse
        runs.append(replay(server, case, messages, prepared))
        server.close()
    (replies, y1), (bulk_replies, bulk_y1) = runs
    assert bulk_replies == replies
    assert np.array_equal(bulk_y1, y1)
    assert np.array_equal(RING.add(camera_share(client, case, replies), y1), reference(case))
    client.close()
