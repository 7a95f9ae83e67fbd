"""The typed secure ops of a plan: one frozen, slotted, keyword-only class per kind.

A plan comes from the edge (or a file), so every op is untrusted input to the
camera and every field is checked when the op is built: its type, and a cap on
every number (sizes, shifts, bit counts, k), so that a crafted plan fails with
one clear SnniError instead of a hang, a huge allocation or a crash. The
Plan then checks what needs the whole plan: each op's shape against its inputs
(:meth:`Op.infer_shape`) and bit counts against the ring.

JSON: ``{"kind", "name", "inputs", "output", "shape", "attrs"}``, where
``attrs`` holds the kind's fields (tuples as lists, optional fields left out
when unset). The format is pinned by tests/snni/golden.

What a kind does lives next to its peers, one function per concern, each a
``functools.singledispatch`` over these classes: running it on shares
(runtime), simulating it in plaintext (simulate) and bounding it (bounds). A
new op is one class here plus one method in each of those three.
"""

from __future__ import annotations

import math
from dataclasses import MISSING, dataclass, field, fields
from typing import Any, ClassVar

from secfepas_sdk.errors import SnniError
from secfepas_sdk.snni.geometry import Window

__all__ = [
    "OP_TYPES",
    "OT_KS",
    "Add",
    "AvgPool",
    "Concat",
    "Conv",
    "ConvTiling",
    "Gemm",
    "GlobalAvgPool",
    "LinearOp",
    "MatmulTiling",
    "MaxPool",
    "Op",
    "OtOp",
    "Relu",
    "ReluTruncate",
    "Reshape",
    "ShiftLeft",
    "Truncate",
    "op_from_dict",
]

# Caps on every numeric field (well above any ImageNet CNN: ResNet50's largest
# activation has 0.8M elements, its widest layer 2048 channels, its largest
# kernel 7x7).
MAX_NAME = 256
MAX_DIM = 1 << 14  # one axis of a tensor
MAX_ELEMENTS = 1 << 24  # one tensor
MAX_WINDOW = 64  # kernel side, stride, one pad
MAX_INPUTS = 64  # of a concat
MAX_WEIGHTS = 1 << 28  # weights of one linear op
MAX_BITS = 64  # shifts, bit counts and log2 bounds (the ring is at most 64 bits)
OT_KS = (2, 4, 6, 8)  # SoftSpokenOT k an op may select; the default is 4


def _int(value: object, what: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise SnniError(f"{what} must be an integer in {lo}..{hi}, got {value!r}")
    return value


def _ints(value: object, n: int, what: str, lo: int, hi: int) -> tuple[int, ...]:
    if not isinstance(value, tuple) or len(value) != n:
        raise SnniError(f"{what} must be {n} integers, got {value!r}")
    return tuple(_int(v, what, lo, hi) for v in value)


def _check_shape(shape: object, what: str) -> tuple[int, ...]:
    if not isinstance(shape, tuple) or len(shape) not in (1, 3):
        raise SnniError(f"{what} must be (C, H, W) or (K,), got {shape!r}")
    dims = tuple(_int(d, what, 1, MAX_DIM) for d in shape)
    if math.prod(dims) > MAX_ELEMENTS:
        raise SnniError(f"{what} {dims} has more than {MAX_ELEMENTS} elements")
    return dims


def _spatial(shape: tuple[int, ...], op: Op) -> tuple[int, int, int]:
    if len(shape) != 3:
        raise SnniError(f"op {op.name!r} ({op.kind}) needs a (C, H, W) input, got {shape}")
    return shape[0], shape[1], shape[2]


def _same(shape: tuple[int, ...], op: Op) -> tuple[int, ...]:
    return shape


# -- field declarations: the validator of each field travels in its metadata ----------
def _num(lo: int, hi: int, *, optional: bool = False) -> Any:
    check = (lambda v, w: None if v is None else _int(v, w, lo, hi)) if optional else None
    return field(
        default=None if optional else MISSING,
        metadata={"check": check or (lambda v, w: _int(v, w, lo, hi))},
    )


def _pair(lo: int, hi: int, n: int = 2, *, optional: bool = False) -> Any:
    def check(v: object, w: str) -> object:
        return None if (optional and v is None) else _ints(v, n, w, lo, hi)

    return field(
        default=None if optional else MISSING,
        metadata={"check": check, "tuple": True},
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class ConvTiling:
    """A conv's packing, pinned by the plan: channels per ciphertext, tile rows and
    columns, outputs per ciphertext (see snni.he.packing)."""

    cp: int
    th: int
    tw: int
    no: int
    dw: int = 0
    """1: a depthwise conv packed as one block-diagonal conv (snni.he.layers)."""

    def __post_init__(self) -> None:
        for name in ("cp", "th", "tw", "no"):
            _int(getattr(self, name), f"conv tiling {name}", 1, MAX_DIM)
        _int(self.dw, "conv tiling dw", 0, 1)

    def to_dict(self) -> dict[str, int]:
        out = {"cp": self.cp, "th": self.th, "tw": self.tw, "no": self.no}
        return {**out, "dw": 1} if self.dw else out


@dataclass(frozen=True, slots=True, kw_only=True)
class MatmulTiling:
    """A matmul's packing: input features per ciphertext."""

    kc: int

    def __post_init__(self) -> None:
        _int(self.kc, "matmul tiling kc", 1, MAX_ELEMENTS)

    def to_dict(self) -> dict[str, int]:
        return {"kc": self.kc}


@dataclass(frozen=True, slots=True, kw_only=True)
class Op:
    """One secure op: reads ``inputs`` (tensor names), writes ``output`` of ``shape``."""

    kind: ClassVar[str] = ""
    arity: ClassVar[int | None] = 1  # None: 1..MAX_INPUTS
    v2_fields: ClassVar[tuple[str, ...]] = ()  # older readers would ignore these

    name: str
    inputs: tuple[str, ...]
    output: str
    shape: tuple[int, ...]

    def __post_init__(self) -> None:
        for label, text in (("name", self.name), ("output", self.output)):
            if not isinstance(text, str) or not 0 < len(text) <= MAX_NAME:
                raise SnniError(f"op {label} must be a string of 1..{MAX_NAME} characters")
        what = f"op {self.name!r} ({self.kind})"
        count = len(self.inputs) if isinstance(self.inputs, tuple) else -1
        arity_ok = 1 <= count <= MAX_INPUTS if self.arity is None else count == self.arity
        if not arity_ok or not all(
            isinstance(i, str) and 0 < len(i) <= MAX_NAME for i in self.inputs
        ):
            raise SnniError(f"{what} has the wrong number or kind of inputs: {self.inputs!r}")
        _check_shape(self.shape, f"{what} shape")
        for f in fields(self):
            check = f.metadata.get("check")
            if check is not None:
                check(getattr(self, f.name), f"{what} {f.name}")
        self._check()

    def _check(self) -> None:
        """Checks across this op's own fields (kinds override)."""

    def infer_shape(self, in_shapes: list[tuple[int, ...]]) -> tuple[int, ...]:
        """The output shape its inputs imply (the plan requires ``shape`` to equal it)."""
        return _same(in_shapes[0], self)

    @property
    def attrs_dict(self) -> dict[str, Any]:
        """The JSON ``attrs`` object: the kind's fields, unset optional ones left out."""
        out: dict[str, Any] = {}
        for f in fields(self):
            if f.name in ("name", "inputs", "output", "shape"):
                continue
            value = getattr(self, f.name)
            if value is None:
                continue
            if isinstance(value, ConvTiling | MatmulTiling):
                value = value.to_dict()
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "inputs": list(self.inputs),
            "output": self.output,
            "shape": list(self.shape),
            "attrs": self.attrs_dict,
        }

    @property
    def needs_v2(self) -> bool:
        return any(getattr(self, name) is not None for name in self.v2_fields)


OP_TYPES: dict[str, type[Op]] = {}


def _register(cls: type[Op]) -> type[Op]:
    OP_TYPES[cls.kind] = cls
    return cls


@dataclass(frozen=True, slots=True, kw_only=True)
class OtOp(Op):
    """An OT-based non-linear op; ``ot_k`` picks its SoftSpokenOT instance."""

    v2_fields: ClassVar[tuple[str, ...]] = ("ot_k",)

    ot_k: int | None = None

    def _check(self) -> None:
        if self.ot_k is not None and self.ot_k not in OT_KS:
            raise SnniError(f"op {self.name!r}: ot_k must be one of {OT_KS}, got {self.ot_k!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class LinearOp(Op):
    """An HE op (weights on the edge). ``l1_log2`` bounds one output's L1 norm of
    the kernel as the HE layout sums it (the noise check); ``w_l1_log2`` and
    ``b_log2`` bound one kernel row and the bias for snni.bounds."""

    l1_log2: int = _num(0, MAX_BITS)
    w_l1_log2: int | None = _num(0, MAX_BITS, optional=True)
    b_log2: int | None = _num(0, MAX_BITS, optional=True)

    def weight_shape(self, in_shape: tuple[int, ...]) -> tuple[int, ...]:
        raise NotImplementedError


@_register
@dataclass(frozen=True, slots=True, kw_only=True)
class Conv(LinearOp):
    kind: ClassVar[str] = "conv"

    kernel: tuple[int, int] = _pair(1, MAX_WINDOW)
    stride: tuple[int, int] = _pair(1, MAX_WINDOW)
    pads: tuple[int, int, int, int] = _pair(0, MAX_WINDOW, 4)
    groups: int = _num(1, MAX_DIM)
    out_channels: int = _num(1, MAX_DIM)
    tiling: ConvTiling | None = None

    def _check(self) -> None:
        if self.out_channels % self.groups:
            raise SnniError(f"conv {self.name!r}: out_channels must divide into groups")
        if self.tiling is not None and not isinstance(self.tiling, ConvTiling):
            raise SnniError(f"conv {self.name!r}: bad tiling {self.tiling!r}")

    @property
    def window(self) -> Window:
        return Window(kernel=self.kernel, stride=self.stride, pads=self.pads)

    def weight_shape(self, in_shape: tuple[int, ...]) -> tuple[int, ...]:
        return (self.out_channels, in_shape[0] // self.groups, *self.kernel)

    def infer_shape(self, in_shapes: list[tuple[int, ...]]) -> tuple[int, ...]:
        c, h, w = _spatial(in_shapes[0], self)
        if c % self.groups:
            raise SnniError(f"conv {self.name!r}: {c} input channels do not divide into groups")
        if math.prod(self.weight_shape(in_shapes[0])) > MAX_WEIGHTS:
            raise SnniError(f"conv {self.name!r} has more than {MAX_WEIGHTS} weights")
        return (self.out_channels, *_pool_hw(self.window, h, w, self))


@_register
@dataclass(frozen=True, slots=True, kw_only=True)
class Gemm(LinearOp):
    kind: ClassVar[str] = "gemm"

    out_features: int = _num(1, MAX_ELEMENTS)
    tiling: MatmulTiling | None = None

    def _check(self) -> None:
        if self.tiling is not None and not isinstance(self.tiling, MatmulTiling):
            raise SnniError(f"gemm {self.name!r}: bad tiling {self.tiling!r}")

    def weight_shape(self, in_shape: tuple[int, ...]) -> tuple[int, ...]:
        return (self.out_features, math.prod(in_shape))

    def infer_shape(self, in_shapes: list[tuple[int, ...]]) -> tuple[int, ...]:
        if len(in_shapes[0]) != 1:
            raise SnniError(f"gemm {self.name!r} needs a flat input, got {in_shapes[0]}")
        if math.prod(self.weight_shape(in_shapes[0])) > MAX_WEIGHTS:
            raise SnniError(f"gemm {self.name!r} has more than {MAX_WEIGHTS} weights")
        return (self.out_features,)


def _pool_hw(window: Window, h: int, w: int, op: Op) -> tuple[int, int]:
    ho, wo = window.out_hw(h, w)
    if ho < 1 or wo < 1:
        raise SnniError(f"op {op.name!r}: the window does not fit the {h}x{w} input")
    return ho, wo


@_register
@dataclass(frozen=True, slots=True, kw_only=True)
class Truncate(OtOp):
    """Division by 2^shift (exact, or 1 ulp low)."""

    kind: ClassVar[str] = "truncate"

    shift: int = _num(0, MAX_BITS - 1)


@_register
@dataclass(frozen=True, slots=True, kw_only=True)
class Relu(OtOp):
    """ReLU; ``bound_bits`` (public, proven by snni.bounds) shortens its comparison.
    With a public ``cap`` c (ReLU6, in ring units) the output is min(relu, c)."""

    kind: ClassVar[str] = "relu"
    v2_fields: ClassVar[tuple[str, ...]] = ("ot_k", "bound_bits", "cap")

    bound_bits: int | None = _num(1, MAX_BITS - 1, optional=True)
    cap: int | None = _num(1, 1 << (MAX_BITS - 2), optional=True)


@_register
@dataclass(frozen=True, slots=True, kw_only=True)
class ReluTruncate(OtOp):
    """ReLU of a truncation by 2^shift, in one protocol (capped at ``cap`` if set)."""

    kind: ClassVar[str] = "relu_truncate"
    v2_fields: ClassVar[tuple[str, ...]] = ("ot_k", "cap")

    shift: int = _num(0, MAX_BITS - 1)
    cap: int | None = _num(1, 1 << (MAX_BITS - 2), optional=True)


@_register
@dataclass(frozen=True, slots=True, kw_only=True)
class MaxPool(OtOp):
    """Max over windows (padding never wins). ``bound_bits`` and ``drop_bits`` (the
    low bits comparisons may ignore) come from the compiler and snni.bounds."""

    kind: ClassVar[str] = "maxpool"
    v2_fields: ClassVar[tuple[str, ...]] = ("ot_k", "bound_bits", "drop_bits")

    kernel: tuple[int, int] = _pair(1, MAX_WINDOW)
    stride: tuple[int, int] = _pair(1, MAX_WINDOW)
    pads: tuple[int, int, int, int] = _pair(0, MAX_WINDOW, 4)
    bound_bits: int | None = _num(1, MAX_BITS - 1, optional=True)
    drop_bits: int | None = _num(0, MAX_BITS - 1, optional=True)

    @property
    def window(self) -> Window:
        return Window(kernel=self.kernel, stride=self.stride, pads=self.pads)

    def infer_shape(self, in_shapes: list[tuple[int, ...]]) -> tuple[int, ...]:
        c, h, w = _spatial(in_shapes[0], self)
        return (c, *_pool_hw(self.window, h, w, self))


@_register
@dataclass(frozen=True, slots=True, kw_only=True)
class AvgPool(Op):
    """A window sum times round(2^shift / count) (local: a public constant).
    ``pads`` include ONNX's ceil-mode extra, ``ceil_pads`` says how much of them
    is that extra (it never counts as an element)."""

    kind: ClassVar[str] = "avgpool"

    kernel: tuple[int, int] = _pair(1, MAX_WINDOW)
    stride: tuple[int, int] = _pair(1, MAX_WINDOW)
    pads: tuple[int, int, int, int] = _pair(0, MAX_WINDOW, 4)
    count_include_pad: int = _num(0, 1)
    shift: int = _num(0, MAX_BITS - 1)
    ceil_pads: tuple[int, int] | None = _pair(0, MAX_WINDOW, optional=True)

    def _check(self) -> None:
        eb, er = self.ceil_pads or (0, 0)
        if eb > self.pads[2] or er > self.pads[3]:
            raise SnniError(f"avgpool {self.name!r}: ceil_pads exceed the end pads")

    @property
    def window(self) -> Window:
        return Window(kernel=self.kernel, stride=self.stride, pads=self.pads)

    def infer_shape(self, in_shapes: list[tuple[int, ...]]) -> tuple[int, ...]:
        c, h, w = _spatial(in_shapes[0], self)
        return (c, *_pool_hw(self.window, h, w, self))


@_register
@dataclass(frozen=True, slots=True, kw_only=True)
class GlobalAvgPool(Op):
    kind: ClassVar[str] = "global_avgpool"

    shift: int = _num(0, MAX_BITS - 1)

    def infer_shape(self, in_shapes: list[tuple[int, ...]]) -> tuple[int, ...]:
        c, _h, _w = _spatial(in_shapes[0], self)
        return (c, 1, 1)


@_register
@dataclass(frozen=True, slots=True, kw_only=True)
class Add(Op):
    kind: ClassVar[str] = "add"
    arity: ClassVar[int | None] = 2

    def infer_shape(self, in_shapes: list[tuple[int, ...]]) -> tuple[int, ...]:
        if in_shapes[0] != in_shapes[1]:
            raise SnniError(f"add {self.name!r} of shapes {in_shapes[0]} and {in_shapes[1]}")
        return in_shapes[0]


@_register
@dataclass(frozen=True, slots=True, kw_only=True)
class ShiftLeft(Op):
    """Multiplication by 2^shift (local): lifts an input to a raw scale."""

    kind: ClassVar[str] = "shift_left"

    shift: int = _num(0, MAX_BITS - 1)


@_register
@dataclass(frozen=True, slots=True, kw_only=True)
class Concat(Op):
    kind: ClassVar[str] = "concat"
    arity: ClassVar[int | None] = None

    axis: int = _num(0, 2)

    def infer_shape(self, in_shapes: list[tuple[int, ...]]) -> tuple[int, ...]:
        first, axis = in_shapes[0], self.axis

        def rest(s: tuple[int, ...]) -> tuple[int, ...]:
            return s[:axis] + s[axis + 1 :]

        if axis >= len(first) or any(
            len(s) != len(first) or rest(s) != rest(first) for s in in_shapes
        ):
            raise SnniError(f"concat {self.name!r} of mismatched shapes {in_shapes}")
        out = list(first)
        out[self.axis] = sum(s[self.axis] for s in in_shapes)
        return tuple(out)


@_register
@dataclass(frozen=True, slots=True, kw_only=True)
class Reshape(Op):
    kind: ClassVar[str] = "reshape"

    def infer_shape(self, in_shapes: list[tuple[int, ...]]) -> tuple[int, ...]:
        if math.prod(in_shapes[0]) != math.prod(self.shape):
            raise SnniError(f"reshape {self.name!r} from {in_shapes[0]} to {self.shape}")
        return self.shape


def _value(cls: type[Op], name: str, raw: object) -> object:
    """A JSON attribute value as the field's Python type (validation follows)."""
    if name == "tiling" and raw is not None:
        if not isinstance(raw, dict):
            raise SnniError(f"tiling must be an object, got {raw!r}")
        tiling = ConvTiling if cls is Conv else MatmulTiling
        try:
            return tiling(**raw)
        except TypeError as exc:
            raise SnniError(f"bad tiling {raw!r}") from exc
    return tuple(raw) if isinstance(raw, list) else raw


def op_from_dict(d: object) -> Op:
    """One op from its JSON object; unknown kinds, unknown or missing attributes and
    out-of-range values are SnniErrors."""
    if not isinstance(d, dict):
        raise SnniError("a plan op must be a JSON object")
    cls = OP_TYPES.get(d.get("kind"))  # type: ignore[arg-type]
    if cls is None:
        raise SnniError(f"unknown plan op kind {d.get('kind')!r}")
    attrs = d.get("attrs", {})
    if not isinstance(attrs, dict):
        raise SnniError("op attrs must be a JSON object")
    known = {f.name for f in fields(cls)} - {"name", "inputs", "output", "shape"}
    unknown = sorted(set(attrs) - known)
    if unknown:
        raise SnniError(f"op {d.get('name')!r} ({cls.kind}) has unknown attributes {unknown}")
    inputs, shape = d.get("inputs"), d.get("shape")
    if not isinstance(inputs, list) or not isinstance(shape, list):
        raise SnniError("op inputs and shape must be JSON arrays")
    try:
        return cls(
            name=d.get("name"),  # type: ignore[arg-type]
            inputs=tuple(inputs),
            output=d.get("output"),  # type: ignore[arg-type]
            shape=tuple(shape),
            **{k: _value(cls, k, v) for k, v in attrs.items()},
        )
    except TypeError as exc:  # a required attribute is missing
        raise SnniError(f"op {d.get('name')!r} ({cls.kind}): {exc}") from exc
