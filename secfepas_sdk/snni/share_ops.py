"""What each plan op does on one party's additive shares (mod 2^l).

Both parties call :func:`run_op` with their own share; the OT-based ops talk
to the peer through the NonlinearEngine, the HE ops through the ``linear``
callback of the runtime (client and server sides differ), and the rest is
local: a sum of shares is a share of the sum, and so is a share times a
public constant. Nothing here sees the other party's share.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import singledispatch

import numpy as np
from numpy.typing import NDArray

from secfepas_sdk.errors import SnniError
from secfepas_sdk.snni.geometry import Window, avgpool_divisors
from secfepas_sdk.snni.nonlinear import NonlinearEngine
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
from secfepas_sdk.snni.party import Party
from secfepas_sdk.snni.ring import Ring

U64 = NDArray[np.uint64]


@dataclass(frozen=True, slots=True)
class ShareContext:
    """One party's means: its ring, its non-linear engine, its HE linear step."""

    ring: Ring
    nl: NonlinearEngine
    linear: Callable[[LinearOp, U64], U64]
    # Capped relu_truncate ops that run both comparisons in one call (snni.schedule).
    paired_caps: frozenset[str] = frozenset()
    # Truncations whose input the plan bounds in [-2^(l-2), 2^(l-2)) (snni.schedule).
    bounded_truncations: frozenset[str] = frozenset()


@singledispatch
def run_op(op: Op, xs: list[U64], ctx: ShareContext) -> U64:
    """This party's share of the op's output from its shares of the inputs."""
    raise SnniError(f"no secure protocol for op kind {op.kind!r}")


@run_op.register
def _(op: LinearOp, xs: list[U64], ctx: ShareContext) -> U64:
    return ctx.linear(op, xs[0])


@run_op.register
def _(op: Truncate, xs: list[U64], ctx: ShareContext) -> U64:
    bound = ctx.ring.bits - 2 if op.name in ctx.bounded_truncations else None
    return ctx.nl.truncate(xs[0], op.shift, bound_bits=bound)


def _cap(y: U64, cap: int | None, ctx: ShareContext) -> U64:
    """min(y, c) = y - relu(y - c) for a public cap c (ReLU6); the client
    subtracts c from its share, so each party keeps a share."""
    if cap is None:
        return y
    ring = ctx.ring
    c = np.full(y.shape, cap, dtype=np.uint64)
    shifted = ring.sub(y, c) if ctx.nl.party is Party.CLIENT else y
    return ring.sub(y, ctx.nl.relu(shifted & ring.mask))


@run_op.register
def _(op: Relu, xs: list[U64], ctx: ShareContext) -> U64:
    return _cap(ctx.nl.relu(xs[0], bound_bits=op.bound_bits), op.cap, ctx)


@run_op.register
def _(op: ReluTruncate, xs: list[U64], ctx: ShareContext) -> U64:
    if op.cap is not None and op.name in ctx.paired_caps:
        return _paired_cap(op, op.cap, xs[0], ctx)
    return _cap(ctx.nl.relu_truncate(xs[0], op.shift), op.cap, ctx)


def _paired_cap(op: ReluTruncate, cap: int, x: U64, ctx: ShareContext) -> U64:
    """min(relu(t), c) as relu(t) - relu(t - c) in one call (the engine's
    relu_truncate_capped); the plan's bounds keep x - c 2^s in range
    (snni.schedule.paired_caps)."""
    return ctx.nl.relu_truncate_capped(x, op.shift, cap)


@run_op.register
def _(op: MaxPool, xs: list[U64], ctx: ShareContext) -> U64:
    """Max over rows, then over columns: max is separable, and for a 3x3 stride-2
    pool this needs 6 instead of 8 comparisons per output (padding stays ignored).
    ``bound_bits``/``drop_bits`` come from the plan (see snni.bounds, compile)."""
    x, nl = xs[0], ctx.nl
    (kh, kw), (sh, sw), (t, left, b, r) = op.kernel, op.stride, op.pads
    ho, _wo = op.window.out_hw(x.shape[1], x.shape[2])
    direct = (kh * kw - 1) * ho
    separable = (kw - 1) * x.shape[1] + (kh - 1) * ho  # both per output column
    bound, drop = op.bound_bits, op.drop_bits or 0
    if kh == 1 or kw == 1 or separable >= direct:
        out: U64 = nl.maxpool2d(
            x[None], op.kernel, op.stride, op.pads, bound_bits=bound, drop_bits=drop
        )[0]
        return out
    rows = nl.maxpool2d(
        x[None], (1, kw), (1, sw), (0, left, 0, r), bound_bits=bound, drop_bits=drop
    )
    out = nl.maxpool2d(rows, (kh, 1), (sh, 1), (t, 0, b, 0), bound_bits=bound, drop_bits=drop)[0]
    return out


def _window_sum(x: U64, window: Window) -> U64:
    out: U64 = window.windows(x).sum(axis=(3, 4), dtype=np.uint64)
    return out


@run_op.register
def _(op: AvgPool, xs: list[U64], ctx: ShareContext) -> U64:
    _c, h, w = xs[0].shape
    counts = avgpool_divisors(
        op.window,
        (h, w),
        count_include_pad=bool(op.count_include_pad),
        ceil_pads=op.ceil_pads or (0, 0),
    )
    consts = ctx.ring.reduce(np.rint(2.0**op.shift / counts).astype(np.int64))
    return ctx.ring.mul(_window_sum(xs[0], op.window), consts[None])


@run_op.register
def _(op: GlobalAvgPool, xs: list[U64], ctx: ShareContext) -> U64:
    c, h, w = xs[0].shape
    const = ctx.ring.reduce(np.int64(round(2.0**op.shift / (h * w))))
    total = xs[0].reshape(c, -1).sum(axis=1, dtype=np.uint64)
    return ctx.ring.mul(total, const).reshape(c, 1, 1)


@run_op.register
def _(op: Add, xs: list[U64], ctx: ShareContext) -> U64:
    return ctx.ring.add(xs[0], xs[1])


@run_op.register
def _(op: ShiftLeft, xs: list[U64], ctx: ShareContext) -> U64:
    out: U64 = xs[0] << np.uint64(op.shift)
    return out


@run_op.register
def _(op: Concat, xs: list[U64], ctx: ShareContext) -> U64:
    out: U64 = np.concatenate(xs, axis=op.axis)
    return out


@run_op.register
def _(op: Reshape, xs: list[U64], ctx: ShareContext) -> U64:
    out: U64 = xs[0].reshape(op.shape)
    return out
