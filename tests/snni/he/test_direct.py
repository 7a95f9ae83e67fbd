"""The direct (coefficient-domain) products give SEAL's replies byte for byte, and
the shares still reconstruct the conv."""

from __future__ import annotations

import importlib.util

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
    camera_share,
    replay,
    ring_conv,
)

from secfepas_sdk.errors import SnniError
from secfepas_sdk.snni.channel import run_pair
from secfepas_sdk.snni.he import direct
from secfepas_sdk.snni.he.bulk import SparseKernels
from secfepas_sdk.snni.he.direct import DirectProducts, InputLimbs
from secfepas_sdk.snni.he.engine import HeClient, HeServer
from secfepas_sdk.snni.he.layers import ConvLayer, ConvSpec
from secfepas_sdk.snni.he.limbs import EXACT_BITS, MIN_LIMB_BITS, limb_bits, limb_count, split_limbs
from secfepas_sdk.snni.he.params import BFV_N8192, BFV_N8192_Q200, BFV_N8192_Q218, HeParams
from secfepas_sdk.snni.prg import Prg

N = BFV_N8192.poly_degree


def _weights(spec: ConvSpec, seed: int, ternary: bool) -> np.ndarray:
    c, m = spec.in_shape[0] // spec.groups, spec.out_channels
    rng = np.random.default_rng(seed)
    top = 2 if ternary else 1 << 10
    w = rng.integers(-top + 1, top, size=(m, c, *spec.kernel), dtype=np.int64)
    w.reshape(-1)[:4] = [0, -1, top - 1, -(top - 1)]
    w[0] = 0  # an all-zero output channel: zero kernels, skipped by SEAL's path
    return w


def _server(client: HeClient, params: HeParams) -> HeServer:
    server = HeServer(params, RING, prg=Prg(SERVER_SEED))
    run_pair(client.setup, server.setup)
    return server


@pytest.mark.parametrize(
    "params", [BFV_N8192, BFV_N8192_Q200, BFV_N8192_Q218], ids=lambda p: p.name
)
@pytest.mark.parametrize("name", list(CONV_SPECS))
def test_direct_replies_are_seals_bytes(
    params: HeParams, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = CONV_SPECS[name]
    layer = ConvLayer(spec, N)
    client = HeClient(params, RING)
    for ternary in (False, True):  # 3 limbs and 2 limbs
        w = _weights(spec, 5, ternary)
        x = RING.random(Prg(), spec.in_shape)
        x0, x1 = RING.share(x, Prg())
        case = Case(layer=layer, w=w, x=x, x0=x0, x1=x1)
        messages = camera_messages(client, case)
        # the plan's public bound may be looser than the weights: 2^25 takes 3 limbs
        l1 = layer.l1_bound(w) if ternary else 2.0**25
        assert limb_count(limb_bits(l1)) == (2 if ternary else 3)
        runs = []
        for use, split in ((False, False), (True, False), (True, True)):
            monkeypatch.setattr(direct, "worth_it", lambda *a, use=use, **k: use)
            server = _server(client, params)
            if split:  # two block parts fed residues, as the edge's pool feeds them
                server.pool = SplitInProcess(server, 2, residues=True)
            source, sparse = layer.kernel_views(w)
            prepared = server.prepare(layer.layout, source, l1, cache=False, sparse=sparse)
            assert (prepared.direct is not None) == use
            runs.append(replay(server, case, messages, prepared))
            server.close()
        (replies, y1), *others = runs
        for direct_replies, direct_y1 in others:
            assert direct_replies == replies
            assert np.array_equal(direct_y1, y1)
        share = camera_share(client, case, replies)
        assert np.array_equal(RING.add(share, y1), ring_conv(spec, w, x))
    client.close()


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    support=st.integers(1, 6),
    l1_log2=st.integers(0, 38),
    blocks=st.integers(1, 3),
    compiled=st.booleans(),
    chunk=st.sampled_from([1, 4, 8, 16, 0]),
)
def test_direct_products_are_exact_mod_q(
    seed: int, support: int, l1_log2: int, blocks: int, compiled: bool, chunk: int
) -> None:
    """Random residues and weights up to the bound, against Python integers, with the
    numba kernels (column chunk by column chunk, or with ``chunk`` 0 one product of
    every column then the shifts, as for sums too large for the cache) and with the
    numpy fallback."""
    n, moduli = 16, [(1 << 60) - 93, (1 << 59) - 55, 1 << 50 | 1]  # any odd q < 2^60
    rng = np.random.default_rng(seed)
    positions = np.sort(rng.choice(n, size=support, replace=False)).astype(np.int64)
    n_in, n_kern = 3, 4
    top = 2**l1_log2  # the largest |w|; the bound is then met with equality
    bound = top * n_in * support
    rows = rng.integers(-top, top + 1, size=(n_kern, support), dtype=np.int64)
    rows[0] = -top  # the extremes, and a zero
    rows[1, 0] = 0
    rows[2] = top
    sparse = SparseKernels(positions=positions, rows=lambda ids: rows[ids])
    terms = [[(i, int(rng.integers(n_kern))) for i in range(n_in)] for _ in range(blocks)]
    cts = {
        i: np.stack(
            [
                np.stack([rng.integers(0, q, size=n, dtype=np.uint64) for q in moduli])
                for _c in range(2)
            ]
        )
        for i in range(n_in)
    }
    bits = limb_bits(bound)
    with pytest.MonkeyPatch.context() as mp:
        if not compiled:
            mp.setattr(direct, "_shift_kernel", lambda: None)
            mp.setattr(direct, "_chunk_kernels", lambda: None)
        if not chunk:
            mp.setattr(direct, "_CHUNKED_SUM_BYTES", 0)
        got = dict(
            DirectProducts(sparse, terms, moduli, bits, n, chunk=chunk or n).products(
                list(range(blocks)), InputLimbs.of(cts, moduli, bits, n)
            )
        )
    for k in range(blocks):
        for c in range(2):
            for p, q in enumerate(moduli):
                want = [0] * n
                for i, kern in terms[k]:
                    a = [int(v) for v in cts[i][c, p]]
                    for j, pos in enumerate(positions.tolist()):
                        wj = int(rows[kern, j])
                        for x in range(n):
                            y = x + pos
                            sign = 1 if y < n else -1
                            want[y % n] += sign * wj * a[x]
                assert got[k][c, p].tolist() == [v % q for v in want]


def test_rows_above_the_exact_bound_are_refused() -> None:
    sparse = SparseKernels(
        positions=np.arange(2, dtype=np.int64),
        rows=lambda ids: np.full((len(ids), 2), 1 << 40, dtype=np.int64),
    )
    q = (1 << 60) - 93
    cts = InputLimbs.of({0: np.zeros((2, 1, 8), dtype=np.uint64)}, [q], limb_bits(2.0**20), 8)
    products = DirectProducts(sparse, [[(0, 0)]], [(1 << 60) - 93], limb_bits(2.0**20), 8)
    with pytest.raises(SnniError, match="exceed"):
        list(products.products([0], cts))


def test_missing_inputs_are_refused() -> None:
    sparse = SparseKernels(
        positions=np.arange(2, dtype=np.int64),
        rows=lambda ids: np.ones((len(ids), 2), dtype=np.int64),
    )
    bits = limb_bits(4.0)
    cts = InputLimbs([0, 1], [(1 << 60) - 93], bits, 8)
    cts.add(0, np.zeros((2, 1, 8), dtype=np.uint64))
    products = DirectProducts(sparse, [[(0, 0), (1, 0)]], [(1 << 60) - 93], bits, 8)
    with pytest.raises(SnniError, match="lacks an input"):
        list(products.products([0], cts))
    with pytest.raises(SnniError, match="does not expect"):
        cts.add(2, np.zeros((2, 1, 8), dtype=np.uint64))


@pytest.mark.skipif(not direct.accelerated(), reason="needs numba")
@pytest.mark.parametrize("bits", [8, 20, 29, 30, 51])
def test_kernel_matches_numpy_at_the_extremes(bits: int) -> None:
    """Limb sums at +-(2^53 - 1) and random ones, every limb count, 60-bit primes."""
    rng = np.random.default_rng(bits)
    limbs, n, m, k = limb_count(bits), 64, 3, 4
    top = float((1 << 53) - 1) / k  # k terms may add up to just below 2^53
    z = rng.uniform(-top, top, size=(m, k, limbs, n)).round()
    z[0] = np.floor(top)  # every sum at its largest, then at its most negative
    z[1] = -np.floor(top)
    positions = np.array([0, 1, 17, n - 1], dtype=np.int64)
    for q in ((1 << 60) - 93, (1 << 59) - 55, (1 << 50) + 3):
        want = np.empty((m, n), dtype=np.uint64)
        got = np.empty((m, n), dtype=np.uint64)
        direct.shift_recombine_numpy(z, positions, q, bits, want)
        direct._shift_kernel()(z, positions, q, bits, got)
        assert np.array_equal(got, want)


@pytest.mark.skipif(direct._chunk_kernels() is None, reason="needs numba")
@pytest.mark.parametrize("bits", [8, 29, 30, 51])
def test_chunk_kernels_match_numpy_at_the_extremes(bits: int) -> None:
    """The chunked path's shifts and recombination: every limb count, chunks that wrap
    whole, in part or not at all, sums at +-(2^53 - 1)."""
    rng = np.random.default_rng(bits)
    limbs, n, m, k, width = limb_count(bits), 64, 3, 4, 16
    top = float((1 << 53) - 1) / k
    z = rng.uniform(-top, top, size=(m, k, limbs, n)).round()
    z[0] = np.floor(top)
    z[1] = -np.floor(top)
    positions = np.array([0, 1, 17, n - 1], dtype=np.int64)
    kernels = direct._chunk_kernels()
    assert kernels is not None
    shift, combine = kernels
    for q in ((1 << 60) - 93, (1 << 59) - 55, (1 << 50) + 3):
        acc = np.zeros((limbs, m, n))
        for t in range(limbs):
            for x0 in range(0, n, width):
                chunk = np.ascontiguousarray(z[:, :, t, x0 : x0 + width]).reshape(m * k, width)
                shift(chunk, positions, x0, acc[t])
        want = np.empty((m, n), dtype=np.uint64)
        got = np.empty((m, n), dtype=np.uint64)
        direct.shift_recombine_numpy(z, positions, q, bits, want)
        combine(acc, q, bits, got)
        assert np.array_equal(got, want)


def test_chunks_must_tile_the_polynomial() -> None:
    sparse = SparseKernels(
        positions=np.arange(2, dtype=np.int64),
        rows=lambda ids: np.ones((len(ids), 2), dtype=np.int64),
    )
    with pytest.raises(SnniError, match="tile"):
        DirectProducts(sparse, [[(0, 0)]], [(1 << 60) - 93], limb_bits(4.0), 16, chunk=3)


def test_cost_model_picks_direct_for_small_supports() -> None:
    """Public geometry only: a 56x56 1x1 conv goes direct, a 3x3 256->256 stays on SEAL."""
    small = ConvLayer(ConvSpec(in_shape=(256, 56, 56), out_channels=64, kernel=(1, 1)), N)
    big = ConvLayer(
        ConvSpec(in_shape=(256, 14, 14), out_channels=256, kernel=(3, 3), pads=(1, 1, 1, 1)), N
    )
    l1 = 2.0**24
    assert direct.worth_it(small.support_size, l1, BFV_N8192_Q218, cached=False)
    assert not direct.worth_it(big.support_size, l1, BFV_N8192_Q218, cached=False)
    assert not direct.worth_it(big.support_size, l1, BFV_N8192_Q218, cached=True)
    assert not direct.worth_it(small.support_size, 2.0**50, BFV_N8192_Q218, cached=False)


def test_blas_is_held_to_one_thread_only_while_the_products_run() -> None:
    threadpoolctl = pytest.importorskip("threadpoolctl")
    blas = [i for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"]
    if not blas:
        pytest.skip("numpy has no BLAS that threadpoolctl sees")
    before = [i["num_threads"] for i in blas]
    with direct.blas_limit(1):
        inside = [
            i["num_threads"] for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"
        ]
    after = [i["num_threads"] for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"]
    assert inside == [1] * len(blas)
    assert after == before
    with direct.blas_limit(0):  # 0: the library's default, untouched
        assert [
            i["num_threads"] for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"
        ] == before


@pytest.mark.parametrize("q", [(1 << 60) - 93, (1 << 59) - 55, (1 << 50) + 1])
def test_balanced_limbs_recombine_and_stay_within_half(q: int) -> None:
    """Every width the path can take, at the residues nearest 0, q/2 and q."""
    x = np.asarray([0, 1, 2, (q - 1) // 2, (q + 1) // 2, q - 2, q - 1], dtype=np.uint64)
    for bits in range(MIN_LIMB_BITS, EXACT_BITS + 1):
        limbs = limb_count(bits)
        d = split_limbs(x, q, bits, limbs)
        assert np.abs(d).max() <= 2 ** (bits - 1)
        back = [sum(int(d[t, i]) << (bits * t) for t in range(limbs)) % q for i in range(x.size)]
        assert back == [int(v) for v in x]


@pytest.mark.skipif(importlib.util.find_spec("numba") is None, reason="needs numba")
@settings(max_examples=60, deadline=None)
@given(
    bits=st.integers(MIN_LIMB_BITS, EXACT_BITS),
    seed=st.integers(0, 2**32 - 1),
)
def test_split_kernel_gives_numpys_limbs(bits: int, seed: int) -> None:
    """The compiled split writes split_limbs's limbs for every prime, into a strided view
    (one input row of InputLimbs), at random residues and the ends of the centred range."""
    moduli = [(1 << 60) - 93, (1 << 59) - 55, (1 << 50) + 1]
    rng = np.random.default_rng(seed)
    n = 32
    x = np.stack([rng.integers(0, q, (2, n), dtype=np.uint64) for q in moduli], axis=1)
    for p, q in enumerate(moduli):
        x[0, p, :6] = [0, 1, (q - 1) // 2, (q + 1) // 2, q - 2, q - 1]
    limbs = limb_count(bits)
    data = np.full((2, len(moduli), 3, limbs, n), np.nan)
    kernel = direct._split_kernel()
    assert kernel(x, np.asarray(moduli, dtype=np.uint64), bits, data[:, :, 1])
    for p, q in enumerate(moduli):
        assert np.array_equal(data[:, p, 1], split_limbs(x[:, p], q, bits, limbs))
    assert np.isnan(data[:, :, [0, 2]]).all()  # the other rows are untouched


def test_input_limbs_refuse_a_residue_outside_its_limbs() -> None:
    """Both forms refuse what a 60-bit prime's residue never is (x >= 2^63 reads as a
    negative int64 that no balanced limbs of width b * limbs = 60 hold)."""
    q = (1 << 60) - 93
    polys = np.zeros((2, 1, 8), dtype=np.uint64)
    polys[1, 0, 3] = np.uint64(1 << 63)
    cts = InputLimbs([0], [q], 20, 8)
    with pytest.raises(SnniError, match="limbs"):
        cts.add(0, polys)
    with pytest.raises(SnniError, match="limbs"):
        split_limbs(polys[:, 0], q, 20, 3)
