"""Compile an ONNX model into a public Plan and the edge's private ModelWeights.

The pipeline, one module per job:
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
from secfepas_sdk.snni.he.params import get_params
from secfepas_sdk.snni.plan import ModelWeights, Plan

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
    he_params: str = "bfv-n8192-q180",
    input_bound: float | None = None,
    ot_k: dict[str, int] | None = None,
    fuse: bool = True,
) -> tuple[Plan, ModelWeights]:
    """ONNX ModelProto -> (public plan, private quantised weights).

    ``input_bound``: a public bound on |input| (e.g. from the normalisation of
    pixels in [0, 1]); with it, the plan carries provable activation bounds that
    shorten the comparisons (snni.bounds), and the client refuses inputs beyond it.
    ``ot_k``: op kind -> SoftSpokenOT k for that kind's ops (e.g. {"maxpool": 8}:
    half the OT bytes, several times the OT compute); other ops use the default.
    ``fuse``: a depthwise conv read only by a pointwise conv becomes one conv."""
    if not hasattr(model, "graph"):
        raise SnniError("compile_onnx takes an onnx.ModelProto (load the file first)")
    front = OnnxFrontEnd(
        model, ring_bits=ring_bits, frac_bits=frac_bits, he=get_params(he_params), fuse=fuse
    )
    input_name, input_shape, output = front.translate()
    ops = pool_before_relu(front.ops, keep={output})
    if input_bound is not None:
        ops = annotate_bounds(ops, input_name, front.shapes, input_bound, ring_bits, frac_bits)
    if ot_k:
        ops = assign_ot_k(ops, ot_k)
    plan = Plan(
        input_name=input_name,
        input_shape=(1, *input_shape),
        ring_bits=ring_bits,
        frac_bits=frac_bits,
        he_params=he_params,
        ops=tuple(ops),
        output=output,
        softmax=front.softmax,
        input_bound=input_bound,
    )
    weights = ModelWeights(front.weights)
    weights.check_against(plan)
    return plan, weights
