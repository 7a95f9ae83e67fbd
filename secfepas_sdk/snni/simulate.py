"""Plaintext fixed-point simulation of a Plan (no cryptography).

It runs the same integer arithmetic the secure protocols compute (weights at f
bits, products at 2f, floor truncations, average pools as a sum times a public
constant) on one party's view of the whole value. It is used to choose l and
f by measured fidelity, and to flag overflow: a value that leaves the signed
range of Z_2^l would wrap in the secure run, so the simulation reports it.
Secure truncation may be one ulp lower than floor; that is the only difference.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import singledispatch

import numpy as np
from numpy.typing import NDArray

from secfepas_sdk.errors import SnniError
from secfepas_sdk.snni.geometry import avgpool_divisors
from secfepas_sdk.snni.ops import (
    Add,
    AvgPool,
    Concat,
    Conv,
    Gemm,
    GlobalAvgPool,
    MaxPool,
    Op,
    Relu,
    ReluTruncate,
    Reshape,
    ShiftLeft,
    Truncate,
)
from secfepas_sdk.snni.plan import ModelWeights, Plan

F64 = NDArray[np.float64]


class Overflow(SnniError):
    """A simulated value left the ring's signed range (the secure run would wrap)."""


@dataclass(frozen=True, slots=True)
class SimContext:
    """What an op's simulation may read besides its inputs."""

    weights: ModelWeights
    shapes: dict[str, tuple[int, ...]]


@singledispatch
def simulate_op(op: Op, xs: list[F64], ctx: SimContext) -> F64:
    """One op on whole (reconstructed) values in ring units, as the protocols compute it."""
    raise SnniError(f"no simulation for op kind {op.kind!r}")


@simulate_op.register
def _(op: Conv, xs: list[F64], ctx: SimContext) -> F64:
    w = ctx.weights.get(f"{op.name}/w", op.weight_shape(ctx.shapes[op.inputs[0]]))
    win = op.window.windows(xs[0])  # (C, ho, wo, kh, kw)
    c, m, g = xs[0].shape[0], w.shape[0], op.groups
    cg, mg = c // g, m // g
    outs = [
        np.einsum(
            "chwij,ocij->ohw",
            win[gi * cg : (gi + 1) * cg],
            w[gi * mg : (gi + 1) * mg].astype(np.float64),
            optimize=True,
        )
        for gi in range(g)
    ]
    bias = ctx.weights.arrays[f"{op.name}/b"].astype(np.float64)[:, None, None]
    out: F64 = np.concatenate(outs) + bias
    return out


@simulate_op.register
def _(op: Gemm, xs: list[F64], ctx: SimContext) -> F64:
    w = ctx.weights.get(f"{op.name}/w", op.weight_shape(ctx.shapes[op.inputs[0]]))
    out: F64 = w.astype(np.float64) @ xs[0].reshape(-1)
    return out + ctx.weights.arrays[f"{op.name}/b"].astype(np.float64)


@simulate_op.register
def _(op: Truncate, xs: list[F64], ctx: SimContext) -> F64:
    out: F64 = np.floor(xs[0] / 2.0**op.shift)
    return out


@simulate_op.register
def _(op: Relu, xs: list[F64], ctx: SimContext) -> F64:
    out: F64 = np.maximum(xs[0], 0.0)
    return out if op.cap is None else np.minimum(out, float(op.cap))


@simulate_op.register
def _(op: ReluTruncate, xs: list[F64], ctx: SimContext) -> F64:
    out: F64 = np.maximum(np.floor(xs[0] / 2.0**op.shift), 0.0)
    return out if op.cap is None else np.minimum(out, float(op.cap))


@simulate_op.register
def _(op: MaxPool, xs: list[F64], ctx: SimContext) -> F64:
    out: F64 = op.window.windows(xs[0], fill=-np.inf).max(axis=(3, 4))
    return out


@simulate_op.register
def _(op: AvgPool, xs: list[F64], ctx: SimContext) -> F64:
    _c, h, w = xs[0].shape
    counts = avgpool_divisors(
        op.window,
        (h, w),
        count_include_pad=bool(op.count_include_pad),
        ceil_pads=op.ceil_pads or (0, 0),
    )
    consts = np.rint(2.0**op.shift / counts)
    out: F64 = op.window.windows(xs[0]).sum(axis=(3, 4)) * consts[None]
    return out


@simulate_op.register
def _(op: GlobalAvgPool, xs: list[F64], ctx: SimContext) -> F64:
    c, h, w = xs[0].shape
    const = round(2.0**op.shift / (h * w))
    out: F64 = xs[0].reshape(c, -1).sum(axis=1).reshape(c, 1, 1) * const
    return out


@simulate_op.register
def _(op: Add, xs: list[F64], ctx: SimContext) -> F64:
    out: F64 = xs[0] + xs[1]
    return out


@simulate_op.register
def _(op: ShiftLeft, xs: list[F64], ctx: SimContext) -> F64:
    out: F64 = xs[0] * 2.0**op.shift
    return out


@simulate_op.register
def _(op: Concat, xs: list[F64], ctx: SimContext) -> F64:
    out: F64 = np.concatenate(xs, axis=op.axis)
    return out


@simulate_op.register
def _(op: Reshape, xs: list[F64], ctx: SimContext) -> F64:
    out: F64 = xs[0].reshape(op.shape)
    return out


def simulate(
    plan: Plan,
    weights: ModelWeights,
    x: NDArray[np.float32],
    *,
    keep: dict[str, F64] | None = None,
) -> F64:
    """Logits of the fixed-point computation on one NCHW image (batch 1); ``keep``
    (if given) receives every tensor, in ring units (tests of snni.bounds)."""
    ring = plan.ring
    limit = float(ring.max_signed)
    ctx = SimContext(weights=weights, shapes=plan.shapes)
    env: dict[str, F64] = {
        plan.input_name: np.rint(np.asarray(x[0], np.float64) * ring.scale).clip(-limit, limit)
    }
    for op in plan.ops:
        y = simulate_op(op, [env[i] for i in op.inputs], ctx)
        if np.abs(y).max(initial=0.0) > limit:
            raise Overflow(f"op {op.name!r} ({op.kind}) overflows Z_2^{ring.bits}")
        if np.abs(y).max(initial=0.0) >= 2.0**52:
            raise Overflow(f"op {op.name!r} exceeds exact float64 simulation")
        env[op.output] = y
    if keep is not None:
        keep.update(env)
    out: F64 = env[plan.output] / 2.0**ring.frac_bits
    return out
