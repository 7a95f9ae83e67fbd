"""Graph passes of the compiler, each one job.

- :func:`fold_batchnorm` (on the ONNX graph): a BatchNormalization right after a
  Conv becomes that Conv's weights and bias.
- :func:`pool_before_relu` (on the plan ops): ReLU and truncation commute with
  max, so pooling first runs the costly ReLU on 4-9x fewer values.
- :func:`annotate_bounds`: provable public activation bounds shorten comparisons.
- :func:`assign_ot_k`: the SoftSpokenOT k chosen per op kind.
- :func:`fuse_pointwise` (while emitting): a depthwise conv whose only reader is a
  pointwise conv becomes one conv with one truncation.

Residual adds at the raw scale are a rule of the front end's bookkeeping
(:mod:`.scales`), applied while the ops are emitted.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from numpy.typing import NDArray

from secfepas_sdk.snni.bounds import bound_bits, input_bound_units, tensor_bounds
from secfepas_sdk.snni.compile.errors import UnsupportedModelError
from secfepas_sdk.snni.ops import Concat, MaxPool, Op, OtOp, Relu, ReluTruncate

F64 = NDArray[np.float64]


def fold_batchnorm(
    graph: Any,
    const: Callable[[str, Any], F64],
    attrs: Callable[[Any], dict[str, Any]],
) -> tuple[dict[str, tuple[F64, F64]], dict[str, str], set[int]]:
    """(conv name -> folded (W, B), BN output -> conv output, indices of BN nodes).

    ``const(tensor, node)`` gives a constant's value (or raises), ``attrs(node)`` a
    node's ONNX attributes. Every BN that does not follow a Conv it alone reads
    is reported in one error."""
    producers = {o: (i, n) for i, n in enumerate(graph.node) for o in n.output}
    consumers: dict[str, int] = defaultdict(int)
    for n in graph.node:
        for i in n.input:
            consumers[i] += 1
    folded: dict[str, tuple[F64, F64]] = {}
    alias: dict[str, str] = {}
    skip: set[int] = set()
    bad = []
    for idx, node in enumerate(graph.node):
        if node.op_type != "BatchNormalization":
            continue
        src = producers.get(node.input[0])
        if src is None or src[1].op_type != "Conv" or consumers[node.input[0]] != 1:
            bad.append(f"{node.name or '?'} (BatchNormalization not right after a Conv)")
            continue
        conv = src[1]
        w = const(conv.input[1], conv)
        b = const(conv.input[2], conv) if len(conv.input) > 2 and conv.input[2] else None
        scale, bias, mean, var = (const(t, node) for t in node.input[1:5])
        eps = float(attrs(node).get("epsilon", 1e-5))
        k = scale / np.sqrt(var + eps)
        b0 = np.zeros(w.shape[0]) if b is None else b
        folded[conv.name or conv.output[0]] = (w * k[:, None, None, None], (b0 - mean) * k + bias)
        alias[node.output[0]] = conv.output[0]
        skip.add(idx)
    if bad:
        raise UnsupportedModelError("unsupported nodes: " + ", ".join(bad))
    return folded, alias, skip


@dataclass(frozen=True, slots=True, kw_only=True)
class LinearSource:
    """How the front end made a conv's output: enough to fuse the conv into the next."""

    name: str
    input: str  # plan tensor at scale f
    weights: F64  # float, BN folded
    bias: F64
    attrs: dict[str, Any]  # kernel, stride, pads, groups
    onnx_output: str


def fuse_pointwise(
    first: LinearSource, w: F64, b: F64, attrs: dict[str, Any]
) -> tuple[F64, F64, dict[str, Any]] | None:
    """A depthwise conv followed (with nothing non-linear between) by a pointwise one
    as one conv: W[m, c] = W2[m, c] W1[c] over the depthwise kernel, b = W2 b1 + b2.
    It saves an HE layer and the truncation between them over C x H x W values; the
    fused conv costs about what the pointwise one did (Cheetah's packing puts the
    kernel inside the polynomial). None when the pair is not of that form."""
    w1, b1, a1 = first.weights, first.bias, first.attrs
    channels = w1.shape[0]
    depthwise = a1["groups"] == channels > 1 and w1.shape[1] == 1
    pointwise = (
        attrs["kernel"] == (1, 1)
        and attrs["stride"] == (1, 1)
        and attrs["pads"] == (0, 0, 0, 0)
        and attrs["groups"] == 1
        and w.shape[1] == channels
    )
    if not (depthwise and pointwise):
        return None
    w2 = w[:, :, 0, 0]
    fused = w2[:, :, None, None] * w1[None, :, 0, :, :]
    return fused, w2 @ b1 + b, {**a1, "groups": 1}


def assign_ot_k(ops: list[Op], ot_k: dict[str, int]) -> list[Op]:
    """Set ``ot_k`` on every non-linear op whose kind ``ot_k`` names."""
    return [
        replace(op, ot_k=int(ot_k[op.kind])) if op.kind in ot_k and isinstance(op, OtOp) else op
        for op in ops
    ]


def annotate_bounds(
    ops: list[Op],
    input_name: str,
    shapes: dict[str, tuple[int, ...]],
    input_bound: float,
    ring_bits: int,
    frac_bits: int,
) -> list[Op]:
    """Set ``bound_bits`` on maxpool and relu ops whose input has a provable public
    bound below the ring's (snni.bounds); Plan re-checks every claim."""
    shapes = {input_name: shapes[input_name], **{op.output: op.shape for op in ops}}
    bounds = tensor_bounds(input_name, input_bound_units(input_bound, frac_bits), shapes, ops)
    out: list[Op] = []
    for op in ops:
        if isinstance(op, MaxPool | Relu):
            limit = (
                ring_bits - 1 if isinstance(op, Relu) else ring_bits - (3 if op.drop_bits else 2)
            )
            k = bound_bits(bounds[op.inputs[0]], ring_bits, limit)
            out.append(op if k is None else replace(op, bound_bits=k))
        else:
            out.append(op)
    return out


def op_graph(ops: list[Op]) -> tuple[dict[str, Op], dict[str, int]]:
    """(tensor -> the op that writes it, tensor -> how many op inputs read it)."""
    producer = {op.output: op for op in ops}
    uses: dict[str, int] = defaultdict(int)
    for op in ops:
        for name in op.inputs:
            uses[name] += 1
    return producer, uses


def pool_before_relu(ops: list[Op], keep: set[str]) -> list[Op]:
    """Rewrite relu_truncate -> [concat ->] maxpool into [concat ->] maxpool -> relu_truncate.

    ReLU and truncation are monotone, so they commute with max; pooling first
    runs the costly ReLU on 4-9x fewer elements. Only applies when the ReLU
    outputs feed nothing else (``keep`` lists tensors that must survive).
    """
    producer, uses = op_graph(ops)
    rewrites: dict[str, list[Op]] = {}  # maxpool name -> its replacement ops
    drop: set[str] = set()
    for op in ops:
        if not isinstance(op, MaxPool):
            continue
        src = producer.get(op.inputs[0])
        if src is None or uses[src.output] != 1 or src.output in keep:
            continue
        relus: list[ReluTruncate] = [src] if isinstance(src, ReluTruncate) else []
        if isinstance(src, Concat):
            feeding = [producer[i] for i in src.inputs if i in producer]
            relus = [r for r in feeding if isinstance(r, ReluTruncate)]
            if len(relus) != len(src.inputs) or any(
                uses[r.output] != 1 or r.output in keep for r in relus
            ):
                continue
        if not relus or len({(r.shift, r.cap) for r in relus}) != 1:
            continue
        pool_in = relus[0].inputs[0]
        new: list[Op] = []
        if isinstance(src, Concat):
            pool_in = f"{src.output}@raw"
            new.append(replace(src, inputs=tuple(r.inputs[0] for r in relus), output=pool_in))
            drop.add(src.name)
        raw_out = f"{op.output}@raw"
        # The pool runs on raw values (scale f + shift) and truncation by `shift`
        # follows: comparisons may ignore the low drop bits as long as the error,
        # at most levels * (2^drop - 1) (engine.maxpool2d), stays below 2^shift,
        # one ulp of the truncated output.
        kh, kw = op.kernel
        levels = math.ceil(math.log2(kh)) + math.ceil(math.log2(kw))
        dropped = max(0, relus[0].shift - math.ceil(math.log2(max(levels, 1))))
        new.append(
            replace(op, inputs=(pool_in,), output=raw_out, drop_bits=dropped or op.drop_bits)
        )
        new.append(
            ReluTruncate(
                name=f"{op.name}/relu",
                inputs=(raw_out,),
                output=op.output,
                shape=op.shape,
                shift=relus[0].shift,
                cap=relus[0].cap,
            )
        )
        rewrites[op.name] = new
        drop.update(r.name for r in relus)
    out: list[Op] = []
    for op in ops:
        if op.name in rewrites:
            out.extend(rewrites[op.name])
        elif op.name not in drop:
            out.append(op)
    return out
