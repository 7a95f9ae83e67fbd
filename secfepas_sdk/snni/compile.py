"""Compile an ONNX model (opset >= 13, batch 1, NCHW) into a public Plan and
the server's quantised ModelWeights.

BatchNormalization after a Conv is folded into it; Dropout and Identity are
removed; a final Softmax is left to the client (it runs after reconstruction).
Weights are rounded to FP16, then to fixed point (f bits; biases 2f bits).
Every unsupported node is reported in one error.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import replace
from typing import Any

import numpy as np
from numpy.typing import NDArray

from secfepas_sdk._extras import require
from secfepas_sdk.errors import SnniError
from secfepas_sdk.snni.bounds import bound_bits, input_bound_units, tensor_bounds
from secfepas_sdk.snni.he.params import check_layer_noise, get_params
from secfepas_sdk.snni.ops import (
    OP_TYPES,
    Concat,
    ConvTiling,
    LinearOp,
    MatmulTiling,
    MaxPool,
    Op,
    OtOp,
    Relu,
    ReluTruncate,
)
from secfepas_sdk.snni.plan import ModelWeights, Plan, he_layer

F64 = NDArray[np.float64]

SUPPORTED = {
    "Conv",
    "Gemm",
    "MatMul",
    "Relu",
    "Clip",
    "MaxPool",
    "AveragePool",
    "GlobalAveragePool",
    "BatchNormalization",
    "Add",
    "Concat",
    "Flatten",
    "Reshape",
    "Dropout",
    "Identity",
    "Softmax",
    "Constant",
}
MIN_OPSET = 13


class UnsupportedModelError(SnniError):
    """The model uses ops (or op settings) the secure engine cannot run."""


def _attrs(node: Any) -> dict[str, Any]:
    onnx = require("onnx", "edge")
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _pool_geometry(h: int, k: int, s: int, p0: int, p1: int, ceil_mode: bool) -> tuple[int, int]:
    """(output size, extra end padding) of a pool along one axis (ONNX semantics)."""
    span = h + p0 + p1 - k
    out = (-(-span // s) if ceil_mode else span // s) + 1
    if ceil_mode and (out - 1) * s >= h + p0:
        out -= 1
    extra = max(0, (out - 1) * s + k - (h + p0 + p1))
    return out, extra


def _pow2(v: int) -> bool:
    return v > 0 and v & (v - 1) == 0


def quantise(values: F64, frac_bits: int) -> NDArray[np.int64]:
    """FP16 rounding first (the storage precision), then fixed point."""
    half = np.asarray(values, dtype=np.float16).astype(np.float64)
    return np.rint(half * float(1 << frac_bits)).astype(np.int64)


class _Compiler:
    def __init__(
        self,
        model: Any,
        ring_bits: int,
        frac_bits: int,
        he_params: str,
        input_bound: float | None = None,
    ) -> None:
        onnx = require("onnx", "edge")
        self.numpy_helper = onnx.numpy_helper
        self.model = model
        self.graph = model.graph
        self.ring_bits = ring_bits
        self.frac_bits = frac_bits
        self.he = get_params(he_params)
        self.he_name = he_params
        self.input_bound = input_bound
        self.consts: dict[str, F64] = {
            i.name: self.numpy_helper.to_array(i).astype(np.float64) for i in self.graph.initializer
        }
        self.alias: dict[str, str] = {}
        self.shapes: dict[str, tuple[int, ...]] = {}
        self.raw: dict[str, int] = {}  # tensors with extra fractional bits -> how many
        self.trunc: dict[str, str] = {}
        self.ops: list[Op] = []
        self.weights: dict[str, NDArray[np.int64]] = {}
        self.softmax = False
        self.folded: dict[str, tuple[F64, F64]] = {}  # conv node name -> (W, B) after BN
        self.skip: set[int] = set()
        # An average pool multiplies its sum by round(2^s / count): 2 bits above f keep
        # the constant's relative error under 1/2^(f+2) * count.
        self.pool_shift = frac_bits + 2

    # -- helpers ---------------------------------------------------------
    def name(self, t: str) -> str:
        while t in self.alias:
            t = self.alias[t]
        return t

    def act(self, t: str) -> str:
        """An activation input at scale f (inserting a truncation if needed)."""
        t = self.name(t)
        if t not in self.shapes:
            raise SnniError(f"tensor {t!r} is not an activation (constant inputs unsupported)")
        if t in self.raw:
            if t not in self.trunc:
                out = f"{t}@f"
                self.emit("truncate", f"{t}/trunc", (t,), out, self.shapes[t], shift=self.raw[t])
                self.trunc[t] = out
            return self.trunc[t]
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

    def const(self, t: str, node: Any) -> F64:
        t = self.name(t)
        if t not in self.consts:
            raise UnsupportedModelError(
                f"node {node.name or node.op_type!r}: input {t!r} must be a constant initializer"
            )
        return self.consts[t]

    def constant_value(self, node: Any, a: dict[str, Any]) -> F64:
        """A Constant node's value (private: the edge's copy of the model only)."""
        if set(a) == {"value"}:
            return np.asarray(self.numpy_helper.to_array(a["value"]), dtype=np.float64)
        scalars = ("value_float", "value_floats", "value_int", "value_ints")
        if len(a) == 1 and next(iter(a)) in scalars:
            return np.asarray(next(iter(a.values())), dtype=np.float64)
        raise UnsupportedModelError(
            f"Constant {node.name or node.output[0]!r} with attributes {sorted(a)} is unsupported"
        )

    def clip_cap(self, node: Any, name: str) -> int:
        """The public cap of a Clip(x, 0, c) node, in ring units at scale f."""
        bounds = [float(self.const(t, node).reshape(-1)[0]) if t else None for t in node.input[1:3]]
        lo, hi = [*bounds, None, None][:2]
        if lo != 0.0 or hi is None or not 0 < hi < 2.0**16:
            raise UnsupportedModelError(f"{name}: only Clip(x, 0, c) with 0 < c < 2^16 (ReLU6)")
        return round(hi * (1 << self.frac_bits))

    # -- passes --------------------------------------------------------------
    def check_supported(self) -> None:
        opsets = [o.version for o in self.model.opset_import if o.domain in ("", "ai.onnx")]
        problems = []
        if opsets and max(opsets) < MIN_OPSET:
            problems.append(f"opset {max(opsets)} (need >= {MIN_OPSET})")
        for node in self.graph.node:
            if node.op_type not in SUPPORTED or node.domain not in ("", "ai.onnx"):
                problems.append(f"{node.name or '?'} ({node.op_type})")
        if problems:
            raise UnsupportedModelError(
                "the model has nodes the secure engine does not support: " + ", ".join(problems)
            )

    def fold_batchnorm(self) -> None:
        producers = {o: (i, n) for i, n in enumerate(self.graph.node) for o in n.output}
        consumers: dict[str, int] = defaultdict(int)
        for n in self.graph.node:
            for i in n.input:
                consumers[i] += 1
        bad = []
        for idx, node in enumerate(self.graph.node):
            if node.op_type != "BatchNormalization":
                continue
            src = producers.get(node.input[0])
            if src is None or src[1].op_type != "Conv" or consumers[node.input[0]] != 1:
                bad.append(f"{node.name or '?'} (BatchNormalization not right after a Conv)")
                continue
            conv = src[1]
            w = self.const(conv.input[1], conv)
            b = self.const(conv.input[2], conv) if len(conv.input) > 2 and conv.input[2] else None
            scale, bias, mean, var = (self.const(t, node) for t in node.input[1:5])
            eps = float(_attrs(node).get("epsilon", 1e-5))
            k = scale / np.sqrt(var + eps)
            b0 = np.zeros(w.shape[0]) if b is None else b
            self.folded[conv.name or conv.output[0]] = (
                w * k[:, None, None, None],
                (b0 - mean) * k + bias,
            )
            self.alias[node.output[0]] = conv.output[0]
            self.skip.add(idx)
        if bad:
            raise UnsupportedModelError("unsupported nodes: " + ", ".join(bad))

    def linear(self, node: Any, kind: str, w: F64, b: F64, inp: str, **attrs: Any) -> None:
        name = node.name or node.output[0]
        x = self.act(inp)
        in_shape = self.shapes[x]
        if kind == "conv":
            _c, h, wd = in_shape
            kh, kw = attrs["kernel"]
            sh, sw = attrs["stride"]
            t, left, bot, r = attrs["pads"]
            shape: tuple[int, ...] = (
                int(w.shape[0]),
                (h + t + bot - kh) // sh + 1,
                (wd + left + r - kw) // sw + 1,
            )
            attrs["out_channels"] = int(w.shape[0])
        else:
            shape = (int(w.shape[0]),)
            attrs["out_features"] = int(w.shape[0])
        wq = quantise(w, self.frac_bits)
        bq = quantise(b, 2 * self.frac_bits)
        probe = make_op(kind, name=name, inputs=(x,), output="?", shape=shape, **attrs, l1_log2=0)
        assert isinstance(probe, LinearOp)
        layer = he_layer(probe, in_shape, self.he.poly_degree)
        l1 = max(layer.l1_bound(wq), 1.0)
        l1_log2 = math.ceil(math.log2(l1))
        try:
            check_layer_noise(self.he, self.ring_bits, 2.0**l1_log2)
        except SnniError as exc:
            raise SnniError(f"layer {name!r}: {exc}") from exc
        # Public activation bounds (snni.bounds): the largest L1 norm of one output's
        # kernel and the largest bias, as powers of two in ring units.
        row_l1 = int(np.abs(wq).reshape(wq.shape[0], -1).sum(axis=1).max())
        w_l1_log2 = max(row_l1, 1).bit_length() - (1 if _pow2(row_l1) else 0)
        b_max = int(np.abs(bq).max(initial=0))
        b_log2 = max(b_max, 1).bit_length() - (1 if _pow2(b_max) else 0)
        out = f"{name}:out"
        self.emit(
            kind, name, (x,), out, shape, **attrs, l1_log2=l1_log2, tiling=layer.tiling,
            w_l1_log2=w_l1_log2, b_log2=b_log2,
        )  # fmt: skip
        self.weights[f"{name}/w"] = wq
        self.weights[f"{name}/b"] = bq
        self.raw[out] = self.frac_bits
        self.alias[node.output[0]] = out

    def add(self, node: Any, name: str) -> None:
        """Add two activations. If one is still at a raw (2f) scale, the other is
        lifted by a local shift and the sum stays raw, so one truncation (often
        fused into the next ReLU) replaces two: ResNet's residual adds."""
        a, b = (self.name(i) for i in node.input)
        for t in (a, b):
            if t not in self.shapes:
                raise UnsupportedModelError(f"{name}: Add of a constant is unsupported")
        if self.shapes[a] != self.shapes[b]:
            raise UnsupportedModelError(f"{name}: Add with broadcasting is unsupported")
        shifts = {self.raw[t] for t in (a, b) if t in self.raw}
        out = f"{name}:out"
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
        self.alias[node.output[0]] = out

    def pool(self, node: Any, kind: str) -> None:
        a = _attrs(node)
        x = self.act(node.input[0])
        c, h, w = self.shapes[x]
        kh, kw = a["kernel_shape"]
        sh, sw = a.get("strides", [1, 1])
        if any(d != 1 for d in a.get("dilations", [1, 1])):
            raise UnsupportedModelError(f"{node.name}: dilated pooling is unsupported")
        if a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
            raise UnsupportedModelError(f"{node.name}: auto_pad is unsupported")
        pt, pl, pb, pr = a.get("pads", [0, 0, 0, 0])
        ceil_mode = bool(a.get("ceil_mode", 0))
        ho, eb = _pool_geometry(h, kh, sh, pt, pb, ceil_mode)
        wo, er = _pool_geometry(w, kw, sw, pl, pr, ceil_mode)
        pads = [int(pt), int(pl), int(pb + eb), int(pr + er)]
        name = node.name or node.output[0]
        out = f"{name}:out"
        if kind == "maxpool":
            self.emit(
                "maxpool", name, (x,), out, (c, ho, wo), kernel=[kh, kw], stride=[sh, sw], pads=pads
            )
        else:
            self.emit(
                "avgpool", name, (x,), out, (c, ho, wo),
                kernel=[kh, kw], stride=[sh, sw], pads=pads,
                count_include_pad=int(a.get("count_include_pad", 0)), ceil_pads=[int(eb), int(er)],
                shift=self.pool_shift,
            )  # fmt: skip
            self.raw[out] = self.pool_shift
        self.alias[node.output[0]] = out

    def node(self, node: Any) -> None:
        op = node.op_type
        a = _attrs(node)
        name = node.name or node.output[0]
        if op == "Constant":
            pass  # read by run() before BN folding
        elif op in ("Dropout", "Identity"):
            self.alias[node.output[0]] = self.name(node.input[0])
        elif op == "Conv":
            if any(d != 1 for d in a.get("dilations", [1, 1])):
                raise UnsupportedModelError(f"{name}: dilated conv is unsupported")
            if a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
                raise UnsupportedModelError(f"{name}: auto_pad is unsupported")
            key = node.name or node.output[0]
            if key in self.folded:
                w, b = self.folded[key]
            else:
                w = self.const(node.input[1], node)
                has_b = len(node.input) > 2 and node.input[2]
                b = self.const(node.input[2], node) if has_b else np.zeros(w.shape[0])
            if w.ndim != 4:
                raise UnsupportedModelError(f"{name}: only 2-D convs are supported")
            pads = a.get("pads", [0, 0, 0, 0])
            self.linear(
                node, "conv", w, b, node.input[0],
                kernel=[int(w.shape[2]), int(w.shape[3])], stride=list(a.get("strides", [1, 1])),
                pads=[int(pads[0]), int(pads[1]), int(pads[2]), int(pads[3])],
                groups=int(a.get("group", 1)),
            )  # fmt: skip
        elif op in ("Gemm", "MatMul"):
            bmat = self.const(node.input[1], node)
            if op == "Gemm":
                if a.get("transA", 0):
                    raise UnsupportedModelError(f"{name}: Gemm with transA is unsupported")
                bmat = bmat.T if a.get("transB", 0) else bmat
                w = float(a.get("alpha", 1.0)) * bmat.T
                c = (
                    self.const(node.input[2], node) * float(a.get("beta", 1.0))
                    if len(node.input) > 2 and node.input[2]
                    else np.zeros(w.shape[0])
                )
                b = np.broadcast_to(c.reshape(-1), (w.shape[0],)).astype(np.float64)
            else:
                w, b = bmat.T, np.zeros(bmat.shape[1])
            if len(self.shapes.get(self.name(node.input[0]), ())) != 1:
                raise UnsupportedModelError(f"{name}: {op} input must be flat (batch, K)")
            self.linear(node, "gemm", w, b, node.input[0])
        elif op in ("Relu", "Clip"):
            # Clip(0, c) (ReLU6) is a ReLU whose output is capped: min(y, c) = y - relu(y - c).
            extra = {} if op == "Relu" else {"cap": self.clip_cap(node, name)}
            x = self.name(node.input[0])
            out = f"{name}:out"
            if x in self.raw:
                self.emit(
                    "relu_truncate", name, (x,), out, self.shapes[x], shift=self.raw[x], **extra
                )
            else:
                x = self.act(x)
                self.emit("relu", name, (x,), out, self.shapes[x], **extra)
            self.alias[node.output[0]] = out
        elif op == "MaxPool":
            self.pool(node, "maxpool")
        elif op == "AveragePool":
            self.pool(node, "avgpool")
        elif op == "GlobalAveragePool":
            x = self.act(node.input[0])
            out = f"{name}:out"
            self.emit(
                "global_avgpool", name, (x,), out, (self.shapes[x][0], 1, 1), shift=self.pool_shift
            )
            self.raw[out] = self.pool_shift
            self.alias[node.output[0]] = out
        elif op == "Add":
            self.add(node, name)
        elif op == "Concat":
            xs = tuple(self.act(i) for i in node.input)
            axis = int(a["axis"])
            rank = len(self.shapes[xs[0]]) + 1
            axis = axis + rank if axis < 0 else axis
            if axis < 1:
                raise UnsupportedModelError(f"{name}: Concat over the batch axis")
            shp = list(self.shapes[xs[0]])
            shp[axis - 1] = sum(self.shapes[x][axis - 1] for x in xs)
            out = f"{name}:out"
            self.emit("concat", name, xs, out, tuple(shp), axis=axis - 1)
            self.alias[node.output[0]] = out
        elif op in ("Flatten", "Reshape"):
            x = self.act(node.input[0])
            size = int(np.prod(self.shapes[x]))
            if op == "Flatten":
                if int(a.get("axis", 1)) != 1:
                    raise UnsupportedModelError(f"{name}: Flatten only with axis 1")
                shape: tuple[int, ...] = (size,)
            else:
                target = [int(v) for v in self.const(node.input[1], node)]
                if target[0] not in (0, 1, -1):
                    raise UnsupportedModelError(f"{name}: Reshape must keep batch 1")
                rest = [
                    self.shapes[x][i - 1] if v == 0 else v for i, v in enumerate(target) if i > 0
                ]
                if rest.count(-1) == 1:
                    known = int(np.prod([v for v in rest if v != -1]))
                    rest[rest.index(-1)] = size // max(known, 1)
                shape = tuple(rest)
                if int(np.prod(shape)) != size:
                    raise UnsupportedModelError(f"{name}: Reshape to {target} does not fit")
            out = f"{name}:out"
            self.emit("reshape", name, (x,), out, shape)
            self.alias[node.output[0]] = out
        elif op == "Softmax":
            outputs = {o.name for o in self.graph.output}
            if node.output[0] not in outputs:
                raise UnsupportedModelError(f"{name}: Softmax is only supported as the last op")
            self.softmax = True
            self.alias[node.output[0]] = self.name(node.input[0])

    def run(self) -> tuple[Plan, ModelWeights]:
        self.check_supported()
        inputs = [i for i in self.graph.input if i.name not in self.consts]
        if len(inputs) != 1:
            raise UnsupportedModelError(f"the model must have one input, it has {len(inputs)}")
        inp = inputs[0]
        dims = [d.dim_value if d.dim_value > 0 else 1 for d in inp.type.tensor_type.shape.dim]
        if len(dims) != 4:
            raise UnsupportedModelError(f"the input must be NCHW, got {len(dims)} dims")
        self.shapes[inp.name] = tuple(dims[1:])
        for node in self.graph.node:
            if node.op_type == "Constant":
                self.consts[node.output[0]] = self.constant_value(node, _attrs(node))
        self.fold_batchnorm()
        for idx, node in enumerate(self.graph.node):
            if idx not in self.skip:
                self.node(node)
        if len(self.graph.output) != 1:
            raise UnsupportedModelError("the model must have exactly one output")
        out = self.act(self.graph.output[0].name)
        self.ops = pool_before_relu(self.ops, keep={out})
        if self.input_bound is not None:
            self.ops = annotate_bounds(
                self.ops, inp.name, self.shapes, self.input_bound, self.ring_bits, self.frac_bits
            )
        plan = Plan(
            input_name=inp.name,
            input_shape=(1, *dims[1:]),
            ring_bits=self.ring_bits,
            frac_bits=self.frac_bits,
            he_params=self.he_name,
            ops=tuple(self.ops),
            output=out,
            softmax=self.softmax,
            input_bound=self.input_bound,
        )
        weights = ModelWeights(self.weights)
        weights.check_against(plan)
        return plan, weights


def compile_onnx(
    model: Any,
    *,
    ring_bits: int = 37,
    frac_bits: int = 12,
    he_params: str = "bfv-n8192-q180",
    input_bound: float | None = None,
    ot_k: dict[str, int] | None = None,
) -> tuple[Plan, ModelWeights]:
    """ONNX ModelProto -> (public plan, private quantised weights). Reading the
    file is the caller's job (models.importer): the engine opens no files.

    ``input_bound``: a public bound on |input| (e.g. from the normalisation of
    pixels in [0, 1]); with it, the plan carries provable activation bounds that
    shorten the comparisons (snni.bounds), and the client refuses inputs beyond it.
    ``ot_k``: op kind -> SoftSpokenOT k for that kind's ops (e.g. {"maxpool": 8}:
    half the OT bytes, several times the OT compute); other ops use the default."""
    if not hasattr(model, "graph"):
        raise SnniError("compile_onnx takes an onnx.ModelProto (load the file first)")
    plan, weights = _Compiler(model, ring_bits, frac_bits, he_params, input_bound).run()
    if ot_k:
        ops = tuple(
            _with_attr(op, "ot_k", int(ot_k[op.kind]))
            if op.kind in ot_k and isinstance(op, OtOp)
            else op
            for op in plan.ops
        )
        plan = replace(plan, ops=ops)
    return plan, weights


def make_op(kind: str, **fields: Any) -> Op:
    """A typed op of ``kind`` from compiler values (lists become tuples, tilings typed)."""
    cls = OP_TYPES[kind]
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()}
    tiling = values.get("tiling")
    if isinstance(tiling, dict):
        values["tiling"] = ConvTiling(**tiling) if kind == "conv" else MatmulTiling(**tiling)
    return cls(**values)  # type: ignore[arg-type]


def _with_attr(op: Op, key: str, value: Any) -> Op:
    return replace(op, **{key: value})


def annotate_bounds(
    ops: list[Op],
    input_name: str,
    shapes: dict[str, tuple[int, ...]],
    input_bound: float,
    ring_bits: int,
    frac_bits: int,
) -> list[Op]:
    """Set ``bound_bits`` on maxpool and relu ops whose input has a provable public
    bound below the ring's (snni.bounds); Plan re-checks every claim."""
    shapes = {input_name: shapes[input_name], **{op.output: op.shape for op in ops}}
    bounds = tensor_bounds(input_name, input_bound_units(input_bound, frac_bits), shapes, ops)
    out = []
    for op in ops:
        k = None
        if isinstance(op, MaxPool):
            limit = ring_bits - (3 if op.drop_bits else 2)
            k = bound_bits(bounds[op.inputs[0]], ring_bits, limit)
        elif isinstance(op, Relu):
            k = bound_bits(bounds[op.inputs[0]], ring_bits, ring_bits - 1)
        out.append(op if k is None else _with_attr(op, "bound_bits", k))
    return out


def pool_before_relu(ops: list[Op], keep: set[str]) -> list[Op]:
    """Rewrite relu_truncate -> [concat ->] maxpool into [concat ->] maxpool -> relu_truncate.

    ReLU and truncation are monotone, so they commute with max; pooling first
    runs the costly ReLU on 4-9x fewer elements. Only applies when the ReLU
    outputs feed nothing else (``keep`` lists tensors that must survive).
    """
    producer = {op.output: op for op in ops}
    uses: dict[str, int] = defaultdict(int)
    for op in ops:
        for i in op.inputs:
            uses[i] += 1
    rewrites: dict[str, list[Op]] = {}  # maxpool name -> its replacement ops
    drop: set[str] = set()
    for op in ops:
        if not isinstance(op, MaxPool):
            continue
        src = producer.get(op.inputs[0])
        if src is None or uses[src.output] != 1 or src.output in keep:
            continue
        relus: list[ReluTruncate] = [src] if isinstance(src, ReluTruncate) else []
        if isinstance(src, Concat):
            feeding = [producer[i] for i in src.inputs if i in producer]
            relus = [r for r in feeding if isinstance(r, ReluTruncate)]
            if len(relus) != len(src.inputs) or any(
                uses[r.output] != 1 or r.output in keep for r in relus
            ):
                continue
        if not relus or len({(r.shift, r.cap) for r in relus}) != 1:
            continue
        pool_in = relus[0].inputs[0]
        new: list[Op] = []
        if isinstance(src, Concat):
            pool_in = f"{src.output}@raw"
            new.append(replace(src, inputs=tuple(r.inputs[0] for r in relus), output=pool_in))
            drop.add(src.name)
        raw_out = f"{op.output}@raw"
        # The pool runs on raw values (scale f + shift) and truncation by `shift`
        # follows: comparisons may ignore the low drop bits as long as the error,
        # at most levels * (2^drop - 1) (engine.maxpool2d), stays below 2^shift,
        # one ulp of the truncated output.
        kh, kw = op.kernel
        levels = math.ceil(math.log2(kh)) + math.ceil(math.log2(kw))
        dropped = max(0, relus[0].shift - math.ceil(math.log2(max(levels, 1))))
        new.append(
            replace(op, inputs=(pool_in,), output=raw_out, drop_bits=dropped or op.drop_bits)
        )
        new.append(
            ReluTruncate(
                name=f"{op.name}/relu",
                inputs=(raw_out,),
                output=op.output,
                shape=op.shape,
                shift=relus[0].shift,
                cap=relus[0].cap,
            )
        )
        rewrites[op.name] = new
        drop.update(r.name for r in relus)
    out: list[Op] = []
    for op in ops:
        if op.name in rewrites:
            out.extend(rewrites[op.name])
        elif op.name not in drop:
            out.append(op)
    return out
