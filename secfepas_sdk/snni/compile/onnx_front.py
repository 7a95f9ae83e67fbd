"""The ONNX front end: one model (opset >= 13, batch 1, NCHW) into plan ops.

It reads the graph node by node, each ONNX op type through its own handler, and
emits typed ops through :class:`~.scales.ScaledOps`. Dropout and Identity
vanish, a final Softmax is left to the client (it runs after reconstruction),
BatchNormalization is folded by :func:`~.passes.fold_batchnorm` first. Every
unsupported node is reported in one error. Constants (initializers and Constant
nodes) are the edge's private values: they become weights, never plan fields.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import NDArray

from secfepas_sdk._extras import require
from secfepas_sdk.snni.compile.errors import UnsupportedModelError
from secfepas_sdk.snni.compile.passes import LinearSource, fold_batchnorm, fuse_pointwise
from secfepas_sdk.snni.compile.quantise import quantise_linear
from secfepas_sdk.snni.compile.scales import ScaledOps, make_op
from secfepas_sdk.snni.geometry import Window, onnx_pool_axis
from secfepas_sdk.snni.he.params import HeParams
from secfepas_sdk.snni.he.prices import EDGE_TIME, TilingPrices
from secfepas_sdk.snni.ops import LinearOp

F64 = NDArray[np.float64]

MIN_OPSET = 13


def onnx_attrs(node: Any) -> dict[str, Any]:
    onnx = require("onnx", "edge")
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _no_dilation_or_auto_pad(a: dict[str, Any], name: str, what: str) -> None:
    if any(d != 1 for d in a.get("dilations", [1, 1])):
        raise UnsupportedModelError(f"{name}: dilated {what} is unsupported")
    if a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
        raise UnsupportedModelError(f"{name}: auto_pad is unsupported")


class OnnxFrontEnd(ScaledOps):
    """Translates one ONNX graph; :meth:`translate` returns the plan's raw material."""

    def __init__(
        self,
        model: Any,
        *,
        ring_bits: int,
        frac_bits: int,
        he: HeParams,
        fuse: bool = True,
        prices: TilingPrices = EDGE_TIME,
    ) -> None:
        super().__init__()
        onnx = require("onnx", "edge")
        self.numpy_helper = onnx.numpy_helper
        self.model = model
        self.graph = model.graph
        self.ring_bits = ring_bits
        self.frac_bits = frac_bits
        self.he = he
        self.prices = prices  # what the tiling search minimises (pinned in the plan)
        self.consts: dict[str, F64] = {
            i.name: self.numpy_helper.to_array(i).astype(np.float64) for i in self.graph.initializer
        }
        self.weights: dict[str, NDArray[np.int64]] = {}
        self.softmax = False
        self.folded: dict[str, tuple[F64, F64]] = {}  # conv node name -> (W, B) after BN
        self.fuse = fuse
        self.uses: dict[str, int] = {}  # ONNX tensor (BN outputs resolved) -> consumers
        self.linear_sources: dict[str, LinearSource] = {}  # plan tensor -> how it was made
        # An average pool multiplies its sum by round(2^s / count): 2 bits above f keep
        # the constant's relative error under 1/2^(f+2) * count.
        self.pool_shift = frac_bits + 2
        self.handlers: dict[str, Callable[[Any, dict[str, Any], str], None]] = {
            "Constant": lambda node, a, name: None,  # read before BN folding
            "Dropout": self._passthrough,
            "Identity": self._passthrough,
            "Conv": self._conv,
            "Gemm": self._gemm,
            "MatMul": self._gemm,
            "Relu": self._relu,
            "Clip": self._relu,
            "MaxPool": self._pool,
            "AveragePool": self._pool,
            "GlobalAveragePool": self._global_avgpool,
            "Add": lambda node, a, name: self._add(node, name),
            "Concat": self._concat,
            "Flatten": self._reshape,
            "Reshape": self._reshape,
            "Softmax": self._softmax,
            "BatchNormalization": lambda node, a, name: None,  # folded (or refused) before
        }

    # -- constants --------------------------------------------------------------------
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

    def check_supported(self) -> None:
        opsets = [o.version for o in self.model.opset_import if o.domain in ("", "ai.onnx")]
        problems = []
        if opsets and max(opsets) < MIN_OPSET:
            problems.append(f"opset {max(opsets)} (need >= {MIN_OPSET})")
        for node in self.graph.node:
            if node.op_type not in self.handlers or node.domain not in ("", "ai.onnx"):
                problems.append(f"{node.name or '?'} ({node.op_type})")
        if problems:
            raise UnsupportedModelError(
                "the model has nodes the secure engine does not support: " + ", ".join(problems)
            )

    # -- handlers, one per ONNX op type ----------------------------------------------
    def _passthrough(self, node: Any, a: dict[str, Any], name: str) -> None:
        self.alias[node.output[0]] = self.name(node.input[0])

    def _linear(self, node: Any, kind: str, w: F64, b: F64, inp: str, **attrs: Any) -> None:
        name = node.name or node.output[0]
        x = self.act(inp)
        if kind == "conv":
            self.linear_sources[f"{name}:out"] = LinearSource(
                name=name, input=x, weights=w, bias=b, attrs=dict(attrs), onnx_output=node.output[0]
            )
        in_shape = self.shapes[x]
        if kind == "conv":
            window = Window(kernel=attrs["kernel"], stride=attrs["stride"], pads=attrs["pads"])
            shape: tuple[int, ...] = (int(w.shape[0]), *window.out_hw(in_shape[1], in_shape[2]))
            attrs["out_channels"] = int(w.shape[0])
        else:
            shape = (int(w.shape[0]),)
            attrs["out_features"] = int(w.shape[0])
        probe = make_op(kind, name=name, inputs=(x,), output="?", shape=shape, **attrs, l1_log2=0)
        assert isinstance(probe, LinearOp)
        q = quantise_linear(
            probe, in_shape, w, b, frac_bits=self.frac_bits, ring_bits=self.ring_bits, he=self.he,
            prices=self.prices,
        )  # fmt: skip
        out = f"{name}:out"
        self.emit(
            kind, name, (x,), out, shape, **attrs, l1_log2=q.l1_log2, tiling=q.tiling,
            w_l1_log2=q.w_l1_log2, b_log2=q.b_log2,
        )  # fmt: skip
        self.weights[f"{name}/w"] = q.weights
        self.weights[f"{name}/b"] = q.bias
        self.raw[out] = self.frac_bits
        self.alias[node.output[0]] = out

    def _conv(self, node: Any, a: dict[str, Any], name: str) -> None:
        _no_dilation_or_auto_pad(a, name, "conv")
        if name in self.folded:
            w, b = self.folded[name]
        else:
            w = self.const(node.input[1], node)
            has_b = len(node.input) > 2 and node.input[2]
            b = self.const(node.input[2], node) if has_b else np.zeros(w.shape[0])
        if w.ndim != 4:
            raise UnsupportedModelError(f"{name}: only 2-D convs are supported")
        pads = a.get("pads", [0, 0, 0, 0])
        attrs: dict[str, Any] = {
            "kernel": (int(w.shape[2]), int(w.shape[3])),
            "stride": tuple(int(s) for s in a.get("strides", [1, 1])),
            "pads": (int(pads[0]), int(pads[1]), int(pads[2]), int(pads[3])),
            "groups": int(a.get("group", 1)),
        }
        inp = node.input[0]
        source = self.linear_sources.get(self.name(inp))
        if self.fuse and source is not None and self.uses.get(source.onnx_output) == 1:
            fused = fuse_pointwise(source, w, b, attrs)
            if fused is not None:  # depthwise then pointwise: one HE op, one truncation
                self.ops = [op for op in self.ops if op.name != source.name]
                for key in (f"{source.name}/w", f"{source.name}/b"):
                    del self.weights[key]
                w, b, attrs = fused
                inp = source.input
        self._linear(node, "conv", w, b, inp, **attrs)

    def _gemm(self, node: Any, a: dict[str, Any], name: str) -> None:
        op = node.op_type
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
        self._linear(node, "gemm", w, b, node.input[0])

    def _relu(self, node: Any, a: dict[str, Any], name: str) -> None:
        # Clip(0, c) (ReLU6) is a ReLU whose output is capped: min(y, c) = y - relu(y - c).
        cap = None if node.op_type == "Relu" else self.clip_cap(node, name)
        out = f"{name}:out"
        self.relu(node.input[0], name, out, cap)
        self.alias[node.output[0]] = out

    def _pool(self, node: Any, a: dict[str, Any], name: str) -> None:
        x = self.act(node.input[0])
        c, h, w = self.shapes[x]
        kh, kw = a["kernel_shape"]
        sh, sw = a.get("strides", [1, 1])
        _no_dilation_or_auto_pad(a, node.name, "pooling")
        pt, pl, pb, pr = a.get("pads", [0, 0, 0, 0])
        ceil_mode = bool(a.get("ceil_mode", 0))
        ho, eb = onnx_pool_axis(h, kh, sh, pt, pb, ceil_mode)
        wo, er = onnx_pool_axis(w, kw, sw, pl, pr, ceil_mode)
        pads = [int(pt), int(pl), int(pb + eb), int(pr + er)]
        out = f"{name}:out"
        if node.op_type == "MaxPool":
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

    def _global_avgpool(self, node: Any, a: dict[str, Any], name: str) -> None:
        x = self.act(node.input[0])
        out = f"{name}:out"
        self.emit(
            "global_avgpool", name, (x,), out, (self.shapes[x][0], 1, 1), shift=self.pool_shift
        )
        self.raw[out] = self.pool_shift
        self.alias[node.output[0]] = out

    def _add(self, node: Any, name: str) -> None:
        out = f"{name}:out"
        self.add(node.input[0], node.input[1], name, out)
        self.alias[node.output[0]] = out

    def _concat(self, node: Any, a: dict[str, Any], name: str) -> None:
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

    def _reshape(self, node: Any, a: dict[str, Any], name: str) -> None:
        x = self.act(node.input[0])
        size = int(np.prod(self.shapes[x]))
        if node.op_type == "Flatten":
            if int(a.get("axis", 1)) != 1:
                raise UnsupportedModelError(f"{name}: Flatten only with axis 1")
            shape: tuple[int, ...] = (size,)
        else:
            target = [int(v) for v in self.const(node.input[1], node)]
            if target[0] not in (0, 1, -1):
                raise UnsupportedModelError(f"{name}: Reshape must keep batch 1")
            rest = [self.shapes[x][i - 1] if v == 0 else v for i, v in enumerate(target) if i > 0]
            if rest.count(-1) == 1:
                known = int(np.prod([v for v in rest if v != -1]))
                rest[rest.index(-1)] = size // max(known, 1)
            shape = tuple(rest)
            if int(np.prod(shape)) != size:
                raise UnsupportedModelError(f"{name}: Reshape to {target} does not fit")
        out = f"{name}:out"
        self.emit("reshape", name, (x,), out, shape)
        self.alias[node.output[0]] = out

    def _softmax(self, node: Any, a: dict[str, Any], name: str) -> None:
        if node.output[0] not in {o.name for o in self.graph.output}:
            raise UnsupportedModelError(f"{name}: Softmax is only supported as the last op")
        self.softmax = True
        self.alias[node.output[0]] = self.name(node.input[0])

    # -- the whole graph ----------------------------------------------------------------
    def translate(self) -> tuple[str, tuple[int, ...], str]:
        """Emit every node's ops; returns (input name, input shape without batch, output).
        The ops are in ``self.ops``, the quantised weights in ``self.weights``."""
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
                self.consts[node.output[0]] = self.constant_value(node, onnx_attrs(node))
        self.folded, bn_alias, skip = fold_batchnorm(self.graph, self.const, onnx_attrs)
        self.alias.update(bn_alias)
        for idx, node in enumerate(self.graph.node):
            for t in node.input if idx not in skip else ():
                key = bn_alias.get(t, t)
                self.uses[key] = self.uses.get(key, 0) + 1
        for o in self.graph.output:
            self.uses[o.name] = self.uses.get(o.name, 0) + 1
        for idx, node in enumerate(self.graph.node):
            if idx not in skip:
                self.handlers[node.op_type](node, onnx_attrs(node), node.name or node.output[0])
        if len(self.graph.output) != 1:
            raise UnsupportedModelError("the model must have exactly one output")
        return inp.name, tuple(dims[1:]), self.act(self.graph.output[0].name)
