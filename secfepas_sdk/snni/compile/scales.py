"""The op list the front end builds, with its fixed-point scale bookkeeping.

Activations sit at scale f. A conv or gemm output, an average pool's sum times
its constant, and a residual sum of those stay "raw", at f + s for a known s,
until something needs scale f: then one truncation by s is inserted (or fused
into the ReLU that follows). A residual Add of a raw tensor and one at scale f
lifts the second by a local shift instead of truncating the first: one
truncation, often inside the next ReLU, replaces two (ResNet's adds).
"""

from __future__ import annotations

from typing import Any

from secfepas_sdk.snni.compile.errors import UnsupportedModelError
from secfepas_sdk.snni.ops import OP_TYPES, ConvTiling, MatmulTiling, Op


def make_op(kind: str, **fields: Any) -> Op:
    """A typed op of ``kind`` from compiler values (lists become tuples, tilings typed)."""
    cls = OP_TYPES[kind]
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()}
    tiling = values.get("tiling")
    if isinstance(tiling, dict):
        values["tiling"] = ConvTiling(**tiling) if kind == "conv" else MatmulTiling(**tiling)
    return cls(**values)  # type: ignore[arg-type]


class ScaledOps:
    """Ops in emission order, tensor shapes, ONNX names -> plan tensors, raw scales."""

    def __init__(self) -> None:
        self.alias: dict[str, str] = {}
        self.shapes: dict[str, tuple[int, ...]] = {}
        self.raw: dict[str, int] = {}  # tensors with extra fractional bits -> how many
        self.trunc: dict[str, str] = {}  # raw tensor -> its truncation to scale f
        self.ops: list[Op] = []

    def name(self, t: str) -> str:
        while t in self.alias:
            t = self.alias[t]
        return t

    def emit(
        self,
        kind: str,
        name: str,
        inputs: tuple[str, ...],
        out: str,
        shape: tuple[int, ...],
        **a: Any,
    ) -> None:
        self.ops.append(make_op(kind, name=name, inputs=inputs, output=out, shape=shape, **a))
        self.shapes[out] = shape

    def act(self, t: str) -> str:
        """An activation input at scale f (inserting a truncation if needed)."""
        t = self.name(t)
        if t not in self.shapes:
            raise UnsupportedModelError(
                f"tensor {t!r} is not an activation (constant inputs unsupported)"
            )
        if t in self.raw:
            if t not in self.trunc:
                out = f"{t}@f"
                self.emit("truncate", f"{t}/trunc", (t,), out, self.shapes[t], shift=self.raw[t])
                self.trunc[t] = out
            return self.trunc[t]
        return t

    def relu(self, source: str, name: str, out: str, cap: int | None) -> None:
        """ReLU (capped for ReLU6) of ``source``; of a raw tensor it is the fused
        relu_truncate, so the truncation costs no extra protocol."""
        extra = {} if cap is None else {"cap": cap}
        x = self.name(source)
        if x in self.raw:
            self.emit("relu_truncate", name, (x,), out, self.shapes[x], shift=self.raw[x], **extra)
        else:
            x = self.act(x)
            self.emit("relu", name, (x,), out, self.shapes[x], **extra)

    def add(self, a: str, b: str, name: str, out: str) -> None:
        """Add two activations; at one raw scale the sum stays raw (see the module)."""
        a, b = self.name(a), self.name(b)
        for t in (a, b):
            if t not in self.shapes:
                raise UnsupportedModelError(f"{name}: Add of a constant is unsupported")
        if self.shapes[a] != self.shapes[b]:
            raise UnsupportedModelError(f"{name}: Add with broadcasting is unsupported")
        shifts = {self.raw[t] for t in (a, b) if t in self.raw}
        if len(shifts) == 1:
            shift = shifts.pop()
            ins = []
            for t in (a, b):
                if t not in self.raw:
                    lifted = f"{t}@<<{shift}"
                    if lifted not in self.shapes:
                        self.emit(
                            "shift_left", f"{t}/lift", (t,), lifted, self.shapes[t], shift=shift
                        )
                    t = lifted
                ins.append(t)
            self.emit("add", name, (ins[0], ins[1]), out, self.shapes[a])
            self.raw[out] = shift
        else:
            x, y = self.act(a), self.act(b)
            self.emit("add", name, (x, y), out, self.shapes[x])
