"""The order both parties run a plan in, and which non-linear ops share flights.

A non-linear protocol costs a fixed number of rounds per call whatever its size (up to
the engine's ``batch_size``), so independent ops of one kind run as one call on their
inputs laid end to end: the ReLUs after a SqueezeNet Fire module's expand1x1 and
expand3x3 convs pay the rounds of one. Everything here is a function of the public
plan and the batch size (the same on both sides, as the engine requires), never of any
share, so both parties derive the same schedule; the messages of a joint call are those
of one call on the concatenation, which the protocols' security covers as any input.

Also here, from the plan's public bounds: which capped ReLUs (ReLU6) run both of their
comparisons in one call (:func:`paired_caps`), and which truncations may read the wrap
from the shares' top bits (:func:`bounded_truncations`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from secfepas_sdk.errors import SnniError
from secfepas_sdk.snni.bounds import input_bound_units, tensor_bounds
from secfepas_sdk.snni.ops import Op, Relu, ReluTruncate, Truncate

if TYPE_CHECKING:
    from secfepas_sdk.snni.plan import Plan

__all__ = ["Step", "bounded_truncations", "paired_caps", "schedule"]

Step = tuple[Op, ...]
"""One op, or several independent non-linear ops of one signature run as one call."""


def _signature(op: Op, bounded: frozenset[str]) -> tuple[object, ...] | None:
    """Ops with equal signatures run the same protocol with the same public settings,
    element by element: one call on their concatenation gives each its own result."""
    if isinstance(op, ReluTruncate) and op.cap is None:
        return ("relu_truncate", op.shift, op.ot_k)
    if isinstance(op, Truncate):
        return ("truncate", op.shift, op.ot_k, op.name in bounded)
    if isinstance(op, Relu) and op.cap is None:
        return ("relu", op.bound_bits, op.ot_k)
    return None


def _ancestors(ops: Sequence[Op]) -> dict[str, frozenset[str]]:
    """Op name -> the names of every op it depends on, directly or not."""
    producer = {op.output: op.name for op in ops}
    out: dict[str, frozenset[str]] = {}
    for op in ops:
        deps: set[str] = set()
        for tensor in op.inputs:
            parent = producer.get(tensor)
            if parent is not None:
                deps.add(parent)
                deps |= out[parent]
        out[op.name] = frozenset(deps)
    return out


def _size(step: Iterable[Op]) -> int:
    return sum(math.prod(op.shape) for op in step)


def schedule(
    ops: Sequence[Op], batch_size: int, bounded: frozenset[str] = frozenset()
) -> list[Step]:
    """The plan's ops as steps, in an order both parties share (``bounded``: the
    :func:`bounded_truncations`, which run another protocol than the others).

    Walking the plan, each groupable op takes in later ops of its signature that do not
    depend on it, while the joint call stays within one batch (beyond, it would pay
    each batch's rounds anyway). The ops between that such a later op needs (say the
    expand3x3 conv) move ahead of the group; they never depend on the group, so every
    op still runs after its inputs."""
    anc = _ancestors(ops)
    items: list[Step] = [(op,) for op in ops]
    i = 0
    while i < len(items):
        group = items[i]
        sig = _signature(group[0], bounded)
        merged = False
        if sig is not None:
            for j in range(i + 1, len(items)):
                cand = items[j]
                if len(cand) != 1 or _signature(cand[0], bounded) != sig:
                    continue
                y = cand[0]
                if _size(group) + _size(cand) > batch_size:
                    continue
                names = {m.name for m in group}
                if names & anc[y.name]:
                    continue
                between = items[i + 1 : j]
                need = [s for s in between if any(m.name in anc[y.name] for m in s)]
                if any(names & anc[m.name] for s in need for m in s):
                    continue
                rest = [s for s in between if not any(m.name in anc[y.name] for m in s)]
                items = items[:i] + need + [group + cand] + rest + items[j + 1 :]
                i += len(need)
                merged = True
                break
        if not merged:
            i += 1
    return items


def _plan_bounds(plan: Plan) -> dict[str, int] | None:
    """Every tensor's public bound (snni.bounds), or None when the plan proves none."""
    if plan.input_bound is None:
        return None
    try:
        return tensor_bounds(
            plan.input_name,
            input_bound_units(plan.input_bound, plan.frac_bits),
            plan.shapes,
            plan.ops,
        )
    except SnniError:  # a linear op without public weight bounds: nothing is proven
        return None


def bounded_truncations(plan: Plan) -> frozenset[str]:
    """Truncations whose input the plan's bounds keep in [-2^(l-2), 2^(l-2)): on Ferret
    they read the wrap from the shares' top bits, in one OT instead of a comparison
    (``NonlinearEngine.truncate(bound_bits=l - 2)``). MobileNetV2's linear bottlenecks
    are of this kind: their input is a ReLU6's, bounded by its cap."""
    bounds = _plan_bounds(plan)
    if bounds is None:
        return frozenset()
    top = 1 << (plan.ring_bits - 2)
    return frozenset(
        op.name for op in plan.ops if isinstance(op, Truncate) and bounds[op.inputs[0]] < top
    )


def paired_caps(plan: Plan) -> frozenset[str]:
    """Capped relu_truncate ops (ReLU6) whose two comparisons run in one call.

    min(relu(t), c) = relu(t) - relu(t - c), with t the truncation of x by 2^s. One
    party subtracts c 2^s from its share of x (the edge on Ferret, the camera on
    SoftSpokenOT: ``NonlinearEngine.relu_truncate_capped``), which leaves the shares'
    low s bits, and so t's dropped carry, unchanged: relu_truncate of x - c 2^s is
    exactly relu(t - c), and the difference is the sequential result min(relu(t), c),
    bit for bit. It needs x - c 2^s within relu_truncate's range, x >= -2^(l-1) + 2^s,
    which only the plan's public bounds (snni.bounds) can promise: without them the ops
    stay sequential."""
    candidates = [op for op in plan.ops if isinstance(op, ReluTruncate) and op.cap is not None]
    bounds = _plan_bounds(plan) if candidates else None
    if bounds is None:
        return frozenset()
    top = 1 << (plan.ring_bits - 1)
    out: set[str] = set()
    for op in candidates:
        assert op.cap is not None
        if bounds[op.inputs[0]] + ((op.cap + 1) << op.shift) <= top:
            out.add(op.name)
    return frozenset(out)
