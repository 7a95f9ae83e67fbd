"""Circuit privacy over a deployment: the statistical distance noise flooding leaves.

Who holds what: the edge holds the weights W and floods the noise of every HE
reply (snni.he.engine); the camera holds the secret key, so it can decrypt every
c0 coefficient it receives, and the decryption noise there depends on W. The
flooding puts each such coefficient within statistical distance 2^-sigma of a
distribution that does not depend on W (sigma per layer, snni.he.params). The
coefficients are independent given the camera's own randomness, so distances
add up: over every decryptable coefficient of every reply of one inference, and
over every inference the camera (any camera) runs under the same weights. This
module counts that sum from the public plan alone. See docs/snni-he.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from secfepas_sdk.snni.he.params import check_layer_noise, get_params
from secfepas_sdk.snni.ops import LinearOp
from secfepas_sdk.snni.plan import Plan, he_layer

__all__ = ["LayerFlood", "inference_distance_log2", "layer_floods"]


@dataclass(frozen=True, slots=True, kw_only=True)
class LayerFlood:
    """One linear op's flooding and what it leaves, per inference."""

    name: str
    replies: int
    coefficients: int  # c0 coefficients the camera receives (and so can decrypt)
    flood_bits: int
    sigma: float  # per-coefficient statistical distance 2^-sigma

    @property
    def distance_log2(self) -> float:
        """log2 of this layer's summed statistical distance in one inference."""
        return math.log2(self.coefficients) - self.sigma


def layer_floods(plan: Plan) -> tuple[LayerFlood, ...]:
    """The flooding of every linear op of ``plan``, in plan order (public data only)."""
    params = get_params(plan.he_params)
    shapes = plan.shapes
    out = []
    for op in plan.ops:
        if not isinstance(op, LinearOp):
            continue
        layout = he_layer(op, shapes[op.inputs[0]], params.poly_degree).layout
        flood, sigma = check_layer_noise(params, plan.ring_bits, 2.0**op.l1_log2)
        out.append(
            LayerFlood(
                name=op.name,
                replies=layout.n_out,
                coefficients=layout.n_out * layout.n,  # every reply carries all of c0
                flood_bits=flood,
                sigma=sigma,
            )
        )
    return tuple(out)


def inference_distance_log2(plan: Plan) -> float:
    """log2 of the statistical distance one inference adds (sum over its layers);
    -inf for a plan without HE layers."""
    total = math.fsum(2.0**layer.distance_log2 for layer in layer_floods(plan))
    return math.log2(total) if total > 0 else -math.inf
