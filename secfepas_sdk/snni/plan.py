"""The public secure-inference plan: a list of secure ops with shapes.

A :class:`Plan` is what both parties agree on: input shape, ring, HE parameter
set and the op list (layer types, shapes, public noise bounds). It holds no
weights; :class:`ModelWeights` (the server's quantised integers) is separate.
Shapes drop the batch dimension (batch 1): activations are (C, H, W) or (K,).

Scales: activations carry f fractional bits. A ``conv``/``gemm`` output carries
2f (weights carry f, biases 2f) and is followed by ``truncate`` or the fused
``relu_truncate``; ``avgpool`` multiplies a local sum by round(2^f / count)
and is followed by ``truncate`` as well.

Compiling from ONNX lives in :mod:`secfepas_sdk.snni.compile`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from secfepas_sdk.errors import SnniError
from secfepas_sdk.snni.bounds import input_bound_units, tensor_bounds
from secfepas_sdk.snni.he.flooding import CircuitPrivacy
from secfepas_sdk.snni.he.layers import ConvLayer, ConvSpec, MatmulLayer
from secfepas_sdk.snni.he.params import get_params
from secfepas_sdk.snni.he.prices import EDGE_TIME, TilingPrices
from secfepas_sdk.snni.ops import (
    Conv,
    Gemm,
    LinearOp,
    MaxPool,
    Op,
    OtOp,
    Relu,
    _check_shape,
    op_from_dict,
)
from secfepas_sdk.snni.ring import Ring

# 2: public activation bounds (input_bound, bound_bits, drop_bits);
# 3: a circuit-privacy budget (the flooding is sized to it, snni.privacy)
PLAN_VERSION = 3
READABLE_VERSIONS = (1, 2, 3)  # a plan is written with the least version its fields need
MAX_OPS = 4096


@dataclass(frozen=True, slots=True, kw_only=True)
class Plan:
    """Public plan of one model (JSON-serialisable)."""

    input_name: str
    input_shape: tuple[int, ...]  # with the batch dimension, e.g. (1, 3, 224, 224)
    ring_bits: int
    frac_bits: int
    he_params: str
    ops: tuple[Op, ...]
    output: str
    softmax: bool = False
    # Public |x| bound of the (normalised) input; enables the bounds of snni.bounds.
    input_bound: float | None = None
    # The deployment's budget the flooding is sized to (None: flood at the most).
    circuit_privacy: CircuitPrivacy | None = None

    def __post_init__(self) -> None:
        Ring(bits=self.ring_bits, frac_bits=self.frac_bits)  # validates
        if self.circuit_privacy is not None and not isinstance(
            self.circuit_privacy, CircuitPrivacy
        ):
            raise SnniError("plan circuit_privacy must be a CircuitPrivacy")
        if self.input_bound is not None and not 0 < self.input_bound < 2.0**20:
            raise SnniError(f"plan input_bound must be positive and finite, got {self.input_bound}")
        if len(self.input_shape) < 2 or self.input_shape[0] != 1:
            raise SnniError(f"plan input shape must have batch 1, got {self.input_shape}")
        _check_shape(tuple(self.input_shape[1:]), "plan input shape")
        if not 0 < len(self.ops) <= MAX_OPS or not all(isinstance(op, Op) for op in self.ops):
            raise SnniError(f"a plan has 1..{MAX_OPS} ops")
        shapes = {self.input_name: tuple(self.input_shape[1:])}
        for op in self.ops:
            unknown = [i for i in op.inputs if i not in shapes]
            if unknown:
                raise SnniError(f"op {op.name!r} reads undefined tensors {unknown}")
            if op.output in shapes:
                raise SnniError(f"op {op.name!r} overwrites tensor {op.output!r}")
            implied = op.infer_shape([shapes[i] for i in op.inputs])
            if implied != op.shape:
                raise SnniError(
                    f"op {op.name!r} claims shape {op.shape}, its inputs give {implied}"
                )
            self._check_bits(op)
            shapes[op.output] = op.shape
        if self.output not in shapes:
            raise SnniError(f"plan output {self.output!r} is never produced")
        self._check_bounds()

    def _check_bits(self, op: Op) -> None:
        """Shifts and bit counts fit this plan's ring (the ops cap them at 64 bits)."""
        for name in ("shift", "bound_bits"):
            value = getattr(op, name, None)
            if value is not None and value >= self.ring_bits:
                raise SnniError(
                    f"op {op.name!r}: {name} {value} is not below the ring's {self.ring_bits} bits"
                )
        cap = getattr(op, "cap", None)
        if cap is not None and cap.bit_length() >= self.ring_bits:
            raise SnniError(f"op {op.name!r}: cap {cap} is beyond the ring's signed range")
        drop = getattr(op, "drop_bits", None)
        if drop is not None and drop > self.frac_bits:
            raise SnniError(f"op {op.name!r}: drop_bits {drop} out of 0..{self.frac_bits}")

    def _check_bounds(self) -> None:
        """Every promised bound must follow from the public data (snni.bounds), so
        a plan can never make the parties promise more than is provable."""
        claimed = [
            op for op in self.ops if isinstance(op, Relu | MaxPool) and op.bound_bits is not None
        ]
        if not claimed:
            return
        if self.input_bound is None:
            raise SnniError("plan claims activation bounds but has no input_bound")
        derived = tensor_bounds(
            self.input_name,
            input_bound_units(self.input_bound, self.frac_bits),
            self.shapes,
            self.ops,
        )
        for op in claimed:
            k = op.bound_bits
            assert k is not None
            if derived[op.inputs[0]] >= 1 << k:
                raise SnniError(f"op {op.name!r}: bound_bits {k} is not implied by the plan")

    @property
    def needs_v2(self) -> bool:
        """Older readers would ignore these fields and fall out of step with the peer."""
        return self.input_bound is not None or any(op.needs_v2 for op in self.ops)

    @property
    def version(self) -> int:
        """The least plan version that carries every field of this plan."""
        if self.circuit_privacy is not None:
            return 3
        return 2 if self.needs_v2 else 1

    @property
    def ot_ks(self) -> tuple[int, ...]:
        """The SoftSpokenOT k values ops select (both parties set up one session each)."""
        return tuple(
            sorted({op.ot_k for op in self.ops if isinstance(op, OtOp) and op.ot_k is not None})
        )

    @property
    def ring(self) -> Ring:
        return Ring(bits=self.ring_bits, frac_bits=self.frac_bits)

    @property
    def shapes(self) -> dict[str, tuple[int, ...]]:
        out = {self.input_name: tuple(self.input_shape[1:])}
        out.update({op.output: op.shape for op in self.ops})
        return out

    @property
    def output_shape(self) -> tuple[int, ...]:
        return self.shapes[self.output]

    def to_dict(self) -> dict[str, Any]:
        extra: dict[str, Any] = {}
        if self.input_bound is not None:
            extra["input_bound"] = self.input_bound
        if self.circuit_privacy is not None:
            extra["circuit_privacy"] = self.circuit_privacy.to_dict()
        return {
            "version": self.version,
            **extra,
            "input_name": self.input_name,
            "input_shape": list(self.input_shape),
            "ring": {"bits": self.ring_bits, "frac_bits": self.frac_bits},
            "he_params": self.he_params,
            "ops": [op.to_dict() for op in self.ops],
            "output": self.output,
            "softmax": self.softmax,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    @staticmethod
    def from_dict(d: dict[str, Any]) -> Plan:
        try:
            ops = d["ops"]
            if not isinstance(ops, list) or len(ops) > MAX_OPS:
                raise SnniError(f"plan ops must be a list of at most {MAX_OPS}")
            if d["version"] not in READABLE_VERSIONS:
                raise SnniError(f"plan version {d['version']} is not one of {READABLE_VERSIONS}")
            bound = d.get("input_bound")
            budget = d.get("circuit_privacy")
            if (budget is None) != (d["version"] < 3):
                raise SnniError("a plan carries circuit_privacy if and only if it is version 3")
            return Plan(
                input_name=str(d["input_name"]),
                input_shape=tuple(int(s) for s in d["input_shape"]),
                ring_bits=int(d["ring"]["bits"]),
                frac_bits=int(d["ring"]["frac_bits"]),
                he_params=str(d["he_params"]),
                ops=tuple(op_from_dict(o) for o in ops),
                output=str(d["output"]),
                softmax=bool(d.get("softmax", False)),
                input_bound=None if bound is None else float(bound),
                circuit_privacy=None if budget is None else CircuitPrivacy.from_dict(budget),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise SnniError(f"malformed plan: {exc}") from exc

    @staticmethod
    def from_json(text: str) -> Plan:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SnniError(f"plan is not JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise SnniError("plan JSON must be an object")
        return Plan.from_dict(data)


class ModelWeights:
    """The server's private quantised parameters: name -> int64 array.

    Conv weights are (M, C/g, kh, kw) at scale f, gemm weights (M, K) at scale f,
    biases (M,) at scale 2f.
    """

    __slots__ = ("arrays",)

    def __init__(self, arrays: dict[str, NDArray[np.int64]]) -> None:
        for key, arr in arrays.items():
            if arr.dtype != np.int64:
                raise SnniError(f"weight {key!r} must be int64, got {arr.dtype}")
        self.arrays = arrays

    def get(self, key: str, shape: tuple[int, ...]) -> NDArray[np.int64]:
        arr = self.arrays.get(key)
        if arr is None:
            raise SnniError(f"weights lack {key!r}")
        if arr.shape != shape:
            raise SnniError(f"weight {key!r} has shape {arr.shape}, the plan needs {shape}")
        return arr

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in self.arrays.values())

    def check_against(self, plan: Plan) -> None:
        """Every linear op has weights of the right shape within its public L1 bound."""
        shapes = plan.shapes
        n = get_params(plan.he_params).poly_degree
        for op in plan.ops:
            if not isinstance(op, LinearOp):
                continue
            in_shape = shapes[op.inputs[0]]
            w = self.get(f"{op.name}/w", op.weight_shape(in_shape))
            b = self.get(f"{op.name}/b", (w.shape[0],))
            if he_layer(op, in_shape, n).l1_bound(w) > 2.0**op.l1_log2:
                raise SnniError(f"weights of {op.name!r} exceed the plan's public L1 bound")
            row_l1 = int(np.abs(w).reshape(w.shape[0], -1).sum(axis=1).max())
            if op.w_l1_log2 is not None and (
                row_l1 > 1 << op.w_l1_log2 or int(np.abs(b).max(initial=0)) > 1 << (op.b_log2 or 0)
            ):
                raise SnniError(f"weights of {op.name!r} exceed the plan's activation bounds")


def he_layer(
    op: LinearOp, in_shape: tuple[int, ...], n: int, prices: TilingPrices = EDGE_TIME
) -> ConvLayer | MatmulLayer:
    """The HE layout of a linear op (public: shapes only); an op without a pinned
    tiling gets the one that is cheapest at ``prices``."""
    if isinstance(op, Conv):
        if len(in_shape) != 3:
            raise SnniError(f"conv {op.name!r} needs a (C, H, W) input, got {in_shape}")
        spec = ConvSpec(
            in_shape=(in_shape[0], in_shape[1], in_shape[2]),
            out_channels=op.out_channels,
            kernel=op.kernel,
            stride=op.stride,
            pads=op.pads,
            groups=op.groups,
        )
        return ConvLayer(spec, n, None if op.tiling is None else op.tiling.to_dict(), prices)
    if isinstance(op, Gemm):
        tiling = None if op.tiling is None else op.tiling.to_dict()
        return MatmulLayer(math.prod(in_shape), op.out_features, n, tiling, prices)
    raise SnniError(f"op {op.name!r} is not linear")
