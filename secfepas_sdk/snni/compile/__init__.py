"""Compile an ONNX model into a public Plan and the edge's private ModelWeights.

The pipeline, one module per job:
0. :mod:`.siblings` (with ``fuse``): sibling convs under one channel concat
   become one conv on the ONNX graph, so their input is uploaded once;
1. :mod:`.onnx_front`: the ONNX front end reads the graph (BN folded first by
   :func:`.passes.fold_batchnorm`) and emits typed plan ops, keeping track of
   fixed-point scales (:mod:`.scales`: truncations, residual adds at the raw scale);
2. :mod:`.quantise`: weights to FP16, then fixed point (f bits; biases 2f), with
   the public bounds each linear op carries;
3. :mod:`.passes`: graph passes on the ops (pool before ReLU, activation bounds,
   per-kind SoftSpokenOT k).

Reading the file is the caller's job (models.importer): the engine opens no files.
"""

from __future__ import annotations

from typing import Any

from secfepas_sdk.errors import SnniError
from secfepas_sdk.snni.compile.errors import UnsupportedModelError
from secfepas_sdk.snni.compile.onnx_front import OnnxFrontEnd
from secfepas_sdk.snni.compile.passes import annotate_bounds, assign_ot_k, pool_before_relu
from secfepas_sdk.snni.compile.quantise import quantise
from secfepas_sdk.snni.compile.rounding import centre_truncations
from secfepas_sdk.snni.compile.siblings import merge_sibling_convs
from secfepas_sdk.snni.he.flooding import DEFAULT_BUDGET, CircuitPrivacy
from secfepas_sdk.snni.he.params import DEFAULT_PARAMS, PARAM_SETS, get_params
from secfepas_sdk.snni.he.prices import DEFAULT_LINK_MBPS, EDGE_TIME, TilingPrices
from secfepas_sdk.snni.plan import ModelWeights, Plan
from secfepas_sdk.snni.privacy import layer_floods

__all__ = [
    "UnsupportedModelError",
    "annotate_bounds",
    "compile_onnx",
    "pool_before_relu",
    "quantise",
]


def compile_onnx(
    model: Any,
    *,
    ring_bits: int = 37,
    frac_bits: int = 12,
    he_params: str | None = None,
    input_bound: float | None = None,
    ot_k: dict[str, int] | None = None,
    fuse: bool = True,
    circuit_privacy: CircuitPrivacy | None = DEFAULT_BUDGET,
    link_mbps: float | None = DEFAULT_LINK_MBPS,
    centre: bool = True,
) -> tuple[Plan, ModelWeights]:
    """ONNX ModelProto -> (public plan, private quantised weights).

    ``input_bound``: a public bound on |input| (e.g. from the normalisation of
    pixels in [0, 1]); with it, the plan carries provable activation bounds that
    shorten the comparisons (snni.bounds), and the client refuses inputs beyond it.
    ``ot_k``: op kind -> SoftSpokenOT k for that kind's ops (e.g. {"maxpool": 8}:
    half the OT bytes, several times the OT compute); other ops use the default.
    ``fuse``: a depthwise conv read only by a pointwise conv becomes one conv, and
    sibling convs on one tensor joined by a channel concat (SqueezeNet's Fire
    expands) become one conv (:mod:`.siblings`).
    ``circuit_privacy``: the deployment's budget (snni.privacy); the plan carries it,
    every layer's flood is sized to it, and ``he_params`` (None: the cheapest set of
    PARAM_SETS that meets it) must meet it. None floods every layer at the most and
    writes a plan of version 1 or 2 (``he_params`` None: DEFAULT_PARAMS).
    ``link_mbps``: choose each layer's tiling for the whole inference's cost on a
    camera link of that rate (:meth:`TilingPrices.for_link`: the lower the rate, the
    fewer uploads and the more replies); None prices the edge's time alone (the
    tilings of plans before 2026-12-03).
    ``centre``: one ulp more in the bias before each truncation, so that the secure
    truncation's error is 0 on average instead of -1 ulp (:mod:`.rounding`); False
    gives the biases of plans before 2026-12-03."""
    if not hasattr(model, "graph"):
        raise SnniError("compile_onnx takes an onnx.ModelProto (load the file first)")
    if he_params is not None:
        candidates = [he_params]
    else:
        candidates = list(PARAM_SETS) if circuit_privacy is not None else [DEFAULT_PARAMS]
    # Every candidate has the same N, so the same packing; the per-layer check runs
    # against the roomiest, and the budget picks among them below.
    he = max((get_params(name) for name in candidates), key=lambda p: p.data_bits)
    if fuse:
        model = merge_sibling_convs(model)
    prices = EDGE_TIME if link_mbps is None else TilingPrices.for_link(link_mbps)
    front = OnnxFrontEnd(
        model, ring_bits=ring_bits, frac_bits=frac_bits, he=he, fuse=fuse, prices=prices
    )
    input_name, input_shape, output = front.translate()
    ops = pool_before_relu(front.ops, keep={output})
    if centre:
        ops = centre_truncations(ops, front.weights, keep={output})
    if input_bound is not None:
        ops = annotate_bounds(ops, input_name, front.shapes, input_bound, ring_bits, frac_bits)
    if ot_k:
        ops = assign_ot_k(ops, ot_k)
    plans = [
        Plan(
            input_name=input_name,
            input_shape=(1, *input_shape),
            ring_bits=ring_bits,
            frac_bits=frac_bits,
            he_params=name,
            ops=tuple(ops),
            output=output,
            softmax=front.softmax,
            input_bound=input_bound,
            circuit_privacy=circuit_privacy,
        )
        for name in candidates
    ]
    plan = _first_that_meets_its_budget(plans)
    weights = ModelWeights(front.weights)
    weights.check_against(plan)
    return plan, weights


def _first_that_meets_its_budget(plans: list[Plan]) -> Plan:
    """The first plan whose parameter set can flood every layer as its budget needs;
    else the error of the last (the roomiest) one."""
    for plan in plans[:-1]:
        try:
            layer_floods(plan)
        except SnniError:
            continue
        return plan
    layer_floods(plans[-1])  # raises: no parameter set meets the budget
    return plans[-1]
