"""Kernel NTTs in bulk (one integer matrix product per layer block) give SEAL's own
NTT-form plaintexts byte for byte, so replies and shares do not change."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator

import numpy as np
import pytest
from testkit.he import (
    RING,
    _case,
    camera_messages,
    camera_share,
    conv_case,
    reference,
    replay,
    server_for,
)

from secfepas_sdk.errors import SnniError
from secfepas_sdk.snni.he import bulk, direct
from secfepas_sdk.snni.he.blocks import ntt_plain
from secfepas_sdk.snni.he.bulk import BulkNtt, SparseKernels
from secfepas_sdk.snni.he.engine import HeClient, _Seal
from secfepas_sdk.snni.he.layers import ConvLayer, ConvSpec
from secfepas_sdk.snni.he.params import BFV_N8192, BFV_N8192_Q218, HeParams

# Skipped only where numba is missing: with it, a probe that refuses its kernel fails
# test_every_compiled_he_kernel_passes_its_probe instead of skipping these.
pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("numba") is None, reason="needs numba (the fast extra)"
)
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
        rows=lambda ids: np.full((len(ids), 4), 1 << 31, dtype=np.int64),
    )
    with pytest.raises(SnniError, match="exceed"):
        BulkNtt(seal, sparse).plains([0])


def test_choice_is_from_public_geometry() -> None:
    """Measured, the bulk path does not beat SEAL's yet (docs/snni-he.md); and never
    where the plan's bound would make it inexact."""
    assert not bulk.worth_it(40, 2.0**20, BFV_N8192_Q218)
    assert not bulk.worth_it(4, 2.0**40, BFV_N8192_Q218)


def test_uncached_layer_gives_the_same_replies_and_exact_shares(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The bulk path against SEAL's per-kernel path on one camera message, byte for byte."""
    monkeypatch.setattr(bulk, "worth_it", lambda *args: True)
    monkeypatch.setattr(direct, "worth_it", lambda *args, **kwargs: False)  # bulk, not direct
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


def test_tiles_of_one_output_block_share_their_kernel_ntts() -> None:
    """Uncached, a two-tile conv NTTs each kernel once (not once per tile), exactly."""
    client = HeClient(BFV_N8192, RING)
    spec = ConvSpec(in_shape=(40, 10, 10), out_channels=24, kernel=(3, 3), pads=(1, 1, 1, 1))
    layer = ConvLayer(spec, N, {"cp": 2, "th": 5, "tw": 10, "no": 1})
    assert layer.packing.n_tiles == 2
    w = np.random.default_rng(5).integers(-(1 << 10), 1 << 10, size=(24, 40, 3, 3))
    case = _case(layer, w, spec.in_shape)
    source = layer.kernel_source(w)
    calls: list[int] = []

    def counted(k: int) -> np.ndarray:
        calls.append(k)
        return source(k)

    server = server_for(client)
    prepared = server.prepare(layer.layout, counted, layer.l1_bound(w), cache=False)
    replies, y1 = replay(server, case, camera_messages(client, case), prepared)
    assert sorted(calls) == list(range(layer.layout.n_kernels))  # n_mul is twice that
    assert np.array_equal(RING.add(camera_share(client, case, replies), y1), reference(case))
    server.close()
    client.close()


def test_every_compiled_he_kernel_passes_its_probe() -> None:
    """With numba installed, no HE kernel falls back silently: each probe accepts its
    compiled kernel (the limb reduction here, the direct path's four)."""
    assert bulk.accelerated()
    assert direct._shift_kernel() is not None
    assert direct._chunk_kernels() is not None
    assert direct._split_kernel() is not None
