"""Quantisation: float weights to the ring's fixed point, and the public numbers a
linear op carries about them (the L1 bound its noise check uses and the bounds
snni.bounds derives activations from). Only the edge runs this: the weights are
private, the powers of two it publishes are not."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from secfepas_sdk.errors import SnniError
from secfepas_sdk.snni.he.params import HeParams, check_layer_noise
from secfepas_sdk.snni.he.prices import EDGE_TIME, TilingPrices
from secfepas_sdk.snni.ops import ConvTiling, LinearOp, MatmulTiling
from secfepas_sdk.snni.plan import he_layer

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]


def quantise(values: F64, frac_bits: int) -> I64:
    """FP16 rounding first (the storage precision), then fixed point."""
    half = np.asarray(values, dtype=np.float16).astype(np.float64)
    return np.rint(half * float(1 << frac_bits)).astype(np.int64)


def log2_bound(v: int) -> int:
    """The least k with v <= 2^k for v >= 1 (and 1 for v = 0, as plans have it)."""
    return max(v, 1).bit_length() - (1 if v > 0 and v & (v - 1) == 0 else 0)


@dataclass(frozen=True, slots=True, kw_only=True)
class QuantisedLinear:
    """A linear op's private integers and the public bounds that go into its plan op."""

    weights: I64  # at scale f
    bias: I64  # at scale 2f
    l1_log2: int
    w_l1_log2: int
    b_log2: int
    tiling: ConvTiling | MatmulTiling


def quantise_linear(
    probe: LinearOp,
    in_shape: tuple[int, ...],
    w: F64,
    b: F64,
    *,
    frac_bits: int,
    ring_bits: int,
    he: HeParams,
    prices: TilingPrices = EDGE_TIME,
) -> QuantisedLinear:
    """Quantise one linear op (``probe`` gives its geometry) and check that its
    worst-case HE noise fits the parameter set."""
    wq = quantise(w, frac_bits)
    bq = quantise(b, 2 * frac_bits)
    layer = he_layer(probe, in_shape, he.poly_degree, prices)
    l1_log2 = math.ceil(math.log2(max(layer.l1_bound(wq), 1.0)))
    try:
        check_layer_noise(he, ring_bits, 2.0**l1_log2)
    except SnniError as exc:
        raise SnniError(f"layer {probe.name!r}: {exc}") from exc
    # Public activation bounds (snni.bounds): the largest L1 norm of one output's
    # kernel and the largest bias, as powers of two in ring units.
    row_l1 = int(np.abs(wq).reshape(wq.shape[0], -1).sum(axis=1).max())
    tiling = layer.tiling
    return QuantisedLinear(
        weights=wq,
        bias=bq,
        l1_log2=l1_log2,
        w_l1_log2=log2_bound(row_l1),
        b_log2=log2_bound(int(np.abs(bq).max(initial=0))),
        tiling=ConvTiling(**tiling) if "cp" in tiling else MatmulTiling(**tiling),
    )
