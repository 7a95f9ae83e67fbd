"""Circuit privacy over a deployment: the statistical distance noise flooding leaves.

Who holds what: the edge holds the weights W and floods the noise of every HE
reply (snni.he.engine); the camera holds the secret key, so it can decrypt every
c0 coefficient it receives, and the decryption noise there depends on W. The
flooding puts each such coefficient within statistical distance 2^-sigma of a
distribution that does not depend on W (snni.he.flooding). The coefficients are
independent given the camera's own randomness, so distances add up: over every
decryptable coefficient of every reply of one inference, and over every
inference the camera (any camera) runs under the same weights. This module
counts that sum from the public plan alone, and sizes each layer's flood to the
plan's budget. See docs/snni-he.md, "Circuit privacy".
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

from secfepas_sdk.errors import SnniError
from secfepas_sdk.snni.he.flooding import (
    CircuitPrivacy,
    drop_bits,
    flood_distance,
    sized_flood_bits,
)
from secfepas_sdk.snni.he.params import check_layer_noise, get_params
from secfepas_sdk.snni.he.reply import ReplyFormat
from secfepas_sdk.snni.ops import LinearOp
from secfepas_sdk.snni.plan import Plan, he_layer

__all__ = [
    "LayerFlood",
    "budget_inferences",
    "inference_distance",
    "inference_distance_log2",
    "layer_floods",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class LayerFlood:
    """One linear op's flooding and what it leaves, per inference."""

    name: str
    replies: int
    coefficients: int  # c0 coefficients the camera receives (and so can decrypt)
    flood_bits: int
    distance: Fraction  # summed over this layer's coefficients, one inference
    reply: ReplyFormat | None = None  # None: whole SEAL ciphertexts (no budget)

    @property
    def sigma(self) -> float:
        """Per-coefficient statistical distance 2^-sigma."""
        return math.log2(self.coefficients) - self.distance_log2

    @property
    def distance_log2(self) -> float:
        return _log2(self.distance)


def _log2(x: Fraction) -> float:
    if x <= 0:
        return -math.inf
    return math.log2(x.numerator) - math.log2(x.denominator)


def layer_floods(plan: Plan) -> tuple[LayerFlood, ...]:
    """The flooding of every linear op of ``plan``, in plan order (public data only).

    Without a budget (plans before version 3) every layer floods at the most that
    decrypts (params.check_layer_noise) and replies carry all of c0. With one,
    replies carry c0 only at the output coefficients (he.reply), so only those
    count; each gets an equal share of the budget, each layer the least flood that
    meets the share, and the noise room left decides the dropped low-order bits. A
    budget the plan's parameter set cannot meet is an SnniError."""
    params = get_params(plan.he_params)
    shapes = plan.shapes
    ops = [op for op in plan.ops if isinstance(op, LinearOp)]
    layouts = [he_layer(op, shapes[op.inputs[0]], params.poly_degree).layout for op in ops]
    budget = plan.circuit_privacy
    if budget is None:
        counts = [layout.n_out * layout.n for layout in layouts]  # replies carry all of c0
    else:
        counts = [int(layout.out_index.size) for layout in layouts]  # c0 at the outputs only
    share = None if budget is None else budget.per_coefficient(sum(counts))
    out = []
    for op, layout, count in zip(ops, layouts, counts, strict=True):
        try:
            if share is None:
                flood, _sigma = check_layer_noise(params, plan.ring_bits, 2.0**op.l1_log2)
            else:
                flood = sized_flood_bits(params, plan.ring_bits, op.l1_log2, share)
        except SnniError as exc:
            if budget is None:
                raise SnniError(f"layer {op.name!r}: {exc}") from exc
            raise SnniError(
                f"the circuit-privacy budget {budget.describe()} is out of reach: layer "
                f"{op.name!r} {exc}; allow a larger distance or fewer inferences"
            ) from exc
        reply = None
        if budget is not None:
            d0, d1 = drop_bits(params, plan.ring_bits, flood, count, layout.n_out * layout.n)
            reply = ReplyFormat(c0_drop=d0, c1_drop=d1)
        out.append(
            LayerFlood(
                name=op.name,
                replies=layout.n_out,
                coefficients=count,
                flood_bits=flood,
                distance=count * flood_distance(params, op.l1_log2, flood),
                reply=reply,
            )
        )
    return tuple(out)


def inference_distance(plan: Plan) -> Fraction:
    """The statistical distance one inference adds (sum over its layers)."""
    return sum((layer.distance for layer in layer_floods(plan)), Fraction(0))


def inference_distance_log2(plan: Plan) -> float:
    """log2 of :func:`inference_distance`; -inf for a plan without HE layers."""
    return _log2(inference_distance(plan))


def budget_inferences(plan: Plan, budget: CircuitPrivacy) -> int:
    """How many inferences under ``plan``'s weights ``budget`` covers: its stated
    count, or fewer if the plan's flooding passes its total distance sooner (a plan
    compiled without a budget, or for another one)."""
    per = inference_distance(plan)
    if per == 0:
        return budget.inferences
    return min(budget.inferences, math.floor(budget.total / per))
