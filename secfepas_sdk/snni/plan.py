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
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from secfepas_sdk.errors import SnniError
from secfepas_sdk.snni.bounds import input_bound_units, tensor_bounds
from secfepas_sdk.snni.he.layers import ConvLayer, ConvSpec, MatmulLayer
from secfepas_sdk.snni.he.params import get_params
from secfepas_sdk.snni.ring import Ring

PLAN_VERSION = 2  # 2: public activation bounds (input_bound, bound_bits, drop_bits)
READABLE_VERSIONS = (1, 2)  # a plan without input_bound is written as version 1

# kind -> attributes it must carry
OP_ATTRS: dict[str, tuple[str, ...]] = {
    "conv": ("kernel", "stride", "pads", "groups", "out_channels", "l1_log2", "tiling"),
    "gemm": ("out_features", "l1_log2", "tiling"),
    "truncate": ("shift",),
    "relu": (),
    "relu_truncate": ("shift",),
    "maxpool": ("kernel", "stride", "pads"),
    "avgpool": ("kernel", "stride", "pads", "count_include_pad", "shift"),
    "global_avgpool": ("shift",),
    "add": (),
    "shift_left": ("shift",),
    "concat": ("axis",),
    "reshape": (),
}
LINEAR_KINDS = ("conv", "gemm")
NONLINEAR_KINDS = ("truncate", "relu", "relu_truncate", "maxpool")
OT_KS = (2, 4, 6, 8)  # SoftSpokenOT k an op may select (attr "ot_k"); the default is 4
V2_ATTRS = ("bound_bits", "drop_bits", "ot_k", "cap")


@dataclass(frozen=True, slots=True, kw_only=True)
class Op:
    """One secure op: reads ``inputs`` (tensor names), writes ``output`` of ``shape``."""

    kind: str
    name: str
    inputs: tuple[str, ...]
    output: str
    shape: tuple[int, ...]
    attrs: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in OP_ATTRS:
            raise SnniError(f"unknown plan op kind {self.kind!r}")
        missing = [a for a in OP_ATTRS[self.kind] if a not in self.attrs]
        if missing:
            raise SnniError(f"op {self.name!r} ({self.kind}) lacks attributes {missing}")
        if not self.inputs or any(d < 1 for d in self.shape):
            raise SnniError(f"op {self.name!r} has no inputs or a bad shape {self.shape}")
        want = 2 if self.kind in ("add",) else None
        if want is not None and len(self.inputs) != want:
            raise SnniError(f"op {self.name!r} needs {want} inputs")

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "inputs": list(self.inputs),
            "output": self.output,
            "shape": list(self.shape),
            "attrs": self.attrs,
        }

    @staticmethod
    def from_dict(d: dict[str, Any]) -> Op:
        try:
            return Op(
                kind=str(d["kind"]),
                name=str(d["name"]),
                inputs=tuple(str(i) for i in d["inputs"]),
                output=str(d["output"]),
                shape=tuple(int(s) for s in d["shape"]),
                attrs=dict(d.get("attrs", {})),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise SnniError(f"malformed plan op: {exc}") from exc


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

    def __post_init__(self) -> None:
        Ring(bits=self.ring_bits, frac_bits=self.frac_bits)  # validates
        if self.input_bound is not None and not 0 < self.input_bound < 2.0**20:
            raise SnniError(f"plan input_bound must be positive and finite, got {self.input_bound}")
        if len(self.input_shape) < 2 or self.input_shape[0] != 1:
            raise SnniError(f"plan input shape must have batch 1, got {self.input_shape}")
        known = {self.input_name}
        for op in self.ops:
            unknown = [i for i in op.inputs if i not in known]
            if unknown:
                raise SnniError(f"op {op.name!r} reads undefined tensors {unknown}")
            known.add(op.output)
        if self.output not in known:
            raise SnniError(f"plan output {self.output!r} is never produced")
        self._check_bounds()

    def _check_bounds(self) -> None:
        """Every promised bound must follow from the public data (snni.bounds), so
        a plan can never make the parties promise more than is provable."""
        claimed = [op for op in self.ops if "bound_bits" in op.attrs]
        for op in self.ops:
            if "ot_k" in op.attrs:
                k = op.attrs["ot_k"]
                if op.kind not in NONLINEAR_KINDS or not isinstance(k, int) or k not in OT_KS:
                    raise SnniError(
                        f"op {op.name!r}: ot_k must be one of {OT_KS} on {NONLINEAR_KINDS}"
                    )
            cap = op.attrs.get("cap", 1)
            if "cap" in op.attrs and (
                op.kind not in ("relu", "relu_truncate") or not isinstance(cap, int) or cap < 1
            ):
                raise SnniError(f"op {op.name!r}: cap only on relu/relu_truncate, a positive int")
            drop = op.attrs.get("drop_bits", 0)
            if "drop_bits" in op.attrs and (op.kind != "maxpool" or not isinstance(drop, int)):
                raise SnniError(f"op {op.name!r}: drop_bits only on maxpool, as an int")
            if not 0 <= drop <= self.frac_bits:
                raise SnniError(f"op {op.name!r}: drop_bits {drop} out of 0..{self.frac_bits}")
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
            k = op.attrs["bound_bits"]
            if op.kind not in ("maxpool", "relu") or not isinstance(k, int):
                raise SnniError(f"op {op.name!r}: bound_bits only on maxpool/relu, as an int")
            if derived[op.inputs[0]] >= 1 << k:
                raise SnniError(f"op {op.name!r}: bound_bits {k} is not implied by the plan")

    @property
    def needs_v2(self) -> bool:
        """Older readers would ignore these fields and fall out of step with the peer."""
        return self.input_bound is not None or any(
            a in op.attrs for op in self.ops for a in V2_ATTRS
        )

    @property
    def ot_ks(self) -> tuple[int, ...]:
        """The SoftSpokenOT k values ops select (both parties set up one session each)."""
        return tuple(sorted({int(op.attrs["ot_k"]) for op in self.ops if "ot_k" in op.attrs}))

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
        return {
            "version": PLAN_VERSION if self.needs_v2 else 1,
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
            if d["version"] not in READABLE_VERSIONS:
                raise SnniError(f"plan version {d['version']} is not one of {READABLE_VERSIONS}")
            bound = d.get("input_bound")
            return Plan(
                input_name=str(d["input_name"]),
                input_shape=tuple(int(s) for s in d["input_shape"]),
                ring_bits=int(d["ring"]["bits"]),
                frac_bits=int(d["ring"]["frac_bits"]),
                he_params=str(d["he_params"]),
                ops=tuple(Op.from_dict(o) for o in d["ops"]),
                output=str(d["output"]),
                softmax=bool(d.get("softmax", False)),
                input_bound=None if bound is None else float(bound),
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
        for op in plan.ops:
            if op.kind not in LINEAR_KINDS:
                continue
            w = self.get(f"{op.name}/w", weight_shape(op, shapes[op.inputs[0]]))
            self.get(f"{op.name}/b", (w.shape[0],))
            layer = he_layer(op, shapes[op.inputs[0]], get_params(plan.he_params).poly_degree)
            if layer.l1_bound(w) > 2.0 ** int(op.attrs["l1_log2"]):
                raise SnniError(f"weights of {op.name!r} exceed the plan's public L1 bound")
            b = self.arrays[f"{op.name}/b"]
            row_l1 = int(np.abs(w).reshape(w.shape[0], -1).sum(axis=1).max())
            if "w_l1_log2" in op.attrs and (
                row_l1 > 1 << int(op.attrs["w_l1_log2"])
                or int(np.abs(b).max(initial=0)) > 1 << int(op.attrs.get("b_log2", 0))
            ):
                raise SnniError(f"weights of {op.name!r} exceed the plan's activation bounds")


def weight_shape(op: Op, in_shape: tuple[int, ...]) -> tuple[int, ...]:
    if op.kind == "conv":
        kh, kw = op.attrs["kernel"]
        return (int(op.attrs["out_channels"]), in_shape[0] // int(op.attrs["groups"]), kh, kw)
    if op.kind == "gemm":
        return (int(op.attrs["out_features"]), int(np.prod(in_shape)))
    raise SnniError(f"op {op.name!r} has no weights")


def he_layer(op: Op, in_shape: tuple[int, ...], n: int) -> ConvLayer | MatmulLayer:
    """The HE layout of a linear op (public: shapes only)."""
    if op.kind == "conv":
        kh, kw = op.attrs["kernel"]
        sh, sw = op.attrs["stride"]
        t, left, b, r = op.attrs["pads"]
        if len(in_shape) != 3:
            raise SnniError(f"conv {op.name!r} needs a (C, H, W) input, got {in_shape}")
        spec = ConvSpec(
            in_shape=(in_shape[0], in_shape[1], in_shape[2]),
            out_channels=int(op.attrs["out_channels"]),
            kernel=(int(kh), int(kw)),
            stride=(int(sh), int(sw)),
            pads=(int(t), int(left), int(b), int(r)),
            groups=int(op.attrs["groups"]),
        )
        return ConvLayer(spec, n, op.attrs.get("tiling"))
    if op.kind == "gemm":
        return MatmulLayer(
            int(np.prod(in_shape)), int(op.attrs["out_features"]), n, op.attrs.get("tiling")
        )
    raise SnniError(f"op {op.name!r} is not linear")
