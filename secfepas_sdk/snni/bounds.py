"""Public worst-case bounds on every shared tensor of a plan (interval arithmetic).

Both parties derive them from the public plan alone: the input's public range
(normalised pixels) and, per linear op, public power-of-two bounds on the largest
L1 norm of one output's kernel (``w_l1_log2``) and on the largest bias (``b_log2``),
all in ring units. A bound B on a tensor means every element v (as a signed ring
value) has |v| <= B. The rules, each exact for the integer ring arithmetic:

- input: the client encodes round(x 2^f) with |x| <= input_bound, so
  |v| <= floor(input_bound 2^f + 1/2);
- conv / gemm: y = sum w x + b over one kernel, |y| <= W1 B + Bb (the HE
  protocol computes this sum exactly mod 2^l);
- truncate(s): floor(v / 2^s), or 1 lower: |out| <= ceil(B / 2^s) + 1;
- relu_truncate(s): ReLU of that: out <= floor(B / 2^s) + 1;
- relu, maxpool (every output is one of its inputs), concat, reshape: B;
- a ReLU with a ``cap`` c (ReLU6): min(its bound, c);
- add: B1 + B2; shift_left(s): B 2^s;
- avgpool / global_avgpool: at one position, a sum of n terms times
  round(2^s / c'), where c' (the divisor there, ONNX semantics) satisfies
  n <= c' <= c = kh kw (or h w), so |out| <= c' B (2^s / c' + 1/2) <= B (2^s + c).
Nothing here depends on the image or on weight values beyond the public bounds.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from functools import singledispatch

from secfepas_sdk.errors import SnniError
from secfepas_sdk.snni.ops import (
    Add,
    AvgPool,
    Concat,
    GlobalAvgPool,
    LinearOp,
    MaxPool,
    Op,
    Relu,
    ReluTruncate,
    Reshape,
    ShiftLeft,
    Truncate,
)


def input_bound_units(input_bound: float, frac_bits: int) -> int:
    """Largest |round(x 2^f)| over |x| <= input_bound."""
    return math.floor(input_bound * (1 << frac_bits) + 0.5)


@singledispatch
def op_bound(op: Op, ins: list[int], in_shape: tuple[int, ...]) -> int:
    """The output bound of one op from its inputs' bounds (see the module docstring)."""
    raise SnniError(f"no bound rule for op kind {op.kind!r}")


@op_bound.register
def _(op: LinearOp, ins: list[int], in_shape: tuple[int, ...]) -> int:
    if op.w_l1_log2 is None or op.b_log2 is None:
        raise SnniError("linear op lacks its public weight bounds")
    return (ins[0] << op.w_l1_log2) + (1 << op.b_log2)


def _capped(op: Relu | ReluTruncate, bound: int) -> int:
    return bound if op.cap is None else min(bound, op.cap)


@op_bound.register
def _(op: Truncate, ins: list[int], in_shape: tuple[int, ...]) -> int:
    return -(-ins[0] >> op.shift) + 1


@op_bound.register
def _(op: ReluTruncate, ins: list[int], in_shape: tuple[int, ...]) -> int:
    return _capped(op, (ins[0] >> op.shift) + 1)


@op_bound.register
def _(op: Relu, ins: list[int], in_shape: tuple[int, ...]) -> int:
    return _capped(op, ins[0])


@op_bound.register(MaxPool)
@op_bound.register(Reshape)
def _(op: Op, ins: list[int], in_shape: tuple[int, ...]) -> int:
    return ins[0]


@op_bound.register
def _(op: Concat, ins: list[int], in_shape: tuple[int, ...]) -> int:
    return max(ins)


@op_bound.register
def _(op: Add, ins: list[int], in_shape: tuple[int, ...]) -> int:
    return ins[0] + ins[1]


@op_bound.register
def _(op: ShiftLeft, ins: list[int], in_shape: tuple[int, ...]) -> int:
    return ins[0] << op.shift


@op_bound.register
def _(op: AvgPool, ins: list[int], in_shape: tuple[int, ...]) -> int:
    return ins[0] * ((1 << op.shift) + op.kernel[0] * op.kernel[1])


@op_bound.register
def _(op: GlobalAvgPool, ins: list[int], in_shape: tuple[int, ...]) -> int:
    return ins[0] * ((1 << op.shift) + in_shape[1] * in_shape[2])


def tensor_bounds(
    input_name: str,
    input_units: int,
    shapes: dict[str, tuple[int, ...]],
    ops: Iterable[Op],
) -> dict[str, int]:
    """Name -> public bound B (|v| <= B in ring units) for every tensor."""
    bounds = {input_name: input_units}
    for op in ops:
        ins = [bounds[i] for i in op.inputs]
        bounds[op.output] = op_bound(op, ins, shapes[op.inputs[0]])
    return bounds


def bound_bits(b: int, ring_bits: int, limit: int) -> int | None:
    """The k with |v| <= b < 2^k, if k <= limit (else None: no useful bound)."""
    k = max(int(b).bit_length(), 1)
    return k if k <= limit and k < ring_bits else None
