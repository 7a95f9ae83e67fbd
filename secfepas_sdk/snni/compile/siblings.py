"""Sibling convs joined by a channel concat become one conv (on the ONNX graph).

SqueezeNet's Fire module reads one tensor with a 1x1 and a 3x3 conv, applies a
ReLU to each and concatenates the two along channels. As two HE layers, the
camera encrypts and uploads the same input twice, in two packings. As one conv
(the 1x1 kernel embedded at the centre of a zero 3x3 one, the output channels
stacked in the concat's order), it uploads the input once: concat(relu(A x),
relu(B x)) = relu([A; B] x) exactly, since ReLU acts per element.

The rewrite runs before the front end, on a copy of the model, and only where it
is exact: every concat input is ``Conv(x)`` or ``Relu(Conv(x))`` (the same form
for all) on one tensor x, each conv read only by that path, with constant
weights, group 1, no dilation or auto_pad, equal strides, and windows that fit
in one frame (the same output grid). It changes which HE ops the plan holds (the
merged conv's tiling is chosen afresh), never what the model computes.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from secfepas_sdk._extras import require

F64 = NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class _Branch:
    conv: Any  # the ONNX Conv node
    relu: Any | None  # its Relu, when the branch has one
    kernel: tuple[int, int]
    pads: tuple[int, int, int, int]  # top, left, bottom, right
    stride: tuple[int, int]


def merge_sibling_convs(model: Any) -> Any:
    """A copy of ``model`` with each mergeable concat of sibling convs as one conv
    (and one ReLU); ``model`` itself is not changed."""
    onnx = require("onnx", "edge")
    out = _copy(onnx.ModelProto, model)
    graph = out.graph
    while (group := _find_group(graph)) is not None:
        _rewrite(graph, *group)
    return out


def _attrs(node: Any) -> dict[str, Any]:
    onnx = require("onnx", "edge")
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _copy(kind: Any, message: Any) -> Any:
    """A detached copy: the graph's repeated fields are cleared and refilled."""
    out = kind()
    out.CopyFrom(message)
    return out


def _consumers(graph: Any) -> dict[str, int]:
    uses: dict[str, int] = defaultdict(int)
    for node in graph.node:
        for name in node.input:
            uses[name] += 1
    for value in graph.output:
        uses[value.name] += 1
    return uses


def _branch(
    producers: dict[str, Any], tensor: str, uses: dict[str, int], consts: dict[str, Any]
) -> _Branch | None:
    """The Conv (and Relu) that made ``tensor``, if it is a mergeable branch."""
    node = producers.get(tensor)
    relu = None
    if node is not None and node.op_type == "Relu" and node.domain in ("", "ai.onnx"):
        relu, node = node, producers.get(node.input[0])
        if uses[relu.input[0]] != 1:
            return None
    if node is None or node.op_type != "Conv" or node.domain not in ("", "ai.onnx"):
        return None
    if uses[tensor] != 1 or any(i and i not in consts for i in node.input[1:]):
        return None
    a = _attrs(node)
    weight = consts[node.input[1]]
    if a.get("group", 1) != 1 or a.get("auto_pad", "NOTSET") != "NOTSET" or len(weight.dims) != 4:
        return None
    if any(d != 1 for d in a.get("dilations", [1, 1])):
        return None
    p = [int(v) for v in a.get("pads", [0, 0, 0, 0])]
    s = [int(v) for v in a.get("strides", [1, 1])]
    if len(p) != 4 or len(s) != 2:
        return None
    kernel = (int(weight.dims[2]), int(weight.dims[3]))
    return _Branch(node, relu, kernel, (p[0], p[1], p[2], p[3]), (s[0], s[1]))


def _find_group(graph: Any) -> tuple[Any, list[_Branch], tuple[int, int, int, int]] | None:
    """The first concat whose inputs are mergeable sibling branches, with the frame."""
    uses = _consumers(graph)
    consts = {i.name: i for i in graph.initializer}
    producers = {o: n for n in graph.node for o in n.output}
    for node in graph.node:
        if node.op_type != "Concat" or node.domain not in ("", "ai.onnx") or len(node.input) < 2:
            continue
        if _attrs(node).get("axis") != 1 or len(set(node.input)) != len(node.input):
            continue
        branches = [_branch(producers, t, uses, consts) for t in node.input]
        if any(b is None for b in branches):
            continue
        found = [b for b in branches if b is not None]
        first = found[0]
        same = all(
            b.conv.input[0] == first.conv.input[0]
            and b.stride == first.stride
            and (b.relu is None) == (first.relu is None)
            for b in found
        )
        frame = _frame(found) if same else None
        if frame is not None:
            return node, found, frame
    return None


def _frame(branches: list[_Branch]) -> tuple[int, int, int, int] | None:
    """(kh, kw, pad top, pad left) of the one window that holds every branch's window,
    or None when their output grids differ."""
    top = max(b.pads[0] for b in branches)
    left = max(b.pads[1] for b in branches)
    kh = max(top - b.pads[0] + b.kernel[0] for b in branches)
    kw = max(left - b.pads[1] + b.kernel[1] for b in branches)
    for b in branches:
        # Same output size along each axis: k - pad_before - pad_after equal in the frame.
        bottom = kh - (top - b.pads[0]) - b.kernel[0] + b.pads[2]
        right = kw - (left - b.pads[1]) - b.kernel[1] + b.pads[3]
        if bottom != max(x.pads[2] for x in branches) or right != max(x.pads[3] for x in branches):
            return None
    return kh, kw, top, left


def _rewrite(
    graph: Any, concat: Any, branches: list[_Branch], frame: tuple[int, int, int, int]
) -> None:
    onnx = require("onnx", "edge")
    helper, numpy_helper = onnx.helper, onnx.numpy_helper
    kh, kw, top, left = frame
    consts = {i.name: i for i in graph.initializer}
    blocks, biases = [], []
    dtype = numpy_helper.to_array(consts[branches[0].conv.input[1]]).dtype
    for b in branches:
        w = numpy_helper.to_array(consts[b.conv.input[1]])
        placed = np.zeros((w.shape[0], w.shape[1], kh, kw), dtype=w.dtype)
        dt, dl = top - b.pads[0], left - b.pads[1]
        placed[:, :, dt : dt + b.kernel[0], dl : dl + b.kernel[1]] = w
        blocks.append(placed)
        has_bias = len(b.conv.input) > 2 and b.conv.input[2]
        bias = numpy_helper.to_array(consts[b.conv.input[2]]) if has_bias else None
        biases.append(np.zeros(w.shape[0], dtype=w.dtype) if bias is None else bias)
    name = concat.name or concat.output[0]
    w_name, b_name = f"{name}/merged.weight", f"{name}/merged.bias"
    conv_out = f"{name}/merged_output" if branches[0].relu is not None else concat.output[0]
    graph.initializer.extend(
        [
            numpy_helper.from_array(np.concatenate(blocks).astype(dtype), w_name),
            numpy_helper.from_array(np.concatenate(biases).astype(dtype), b_name),
        ]
    )
    bottom = max(b.pads[2] for b in branches)
    right = max(b.pads[3] for b in branches)
    new = [
        helper.make_node(
            "Conv",
            [branches[0].conv.input[0], w_name, b_name],
            [conv_out],
            name=f"{name}/merged/Conv",
            kernel_shape=[kh, kw],
            pads=[top, left, bottom, right],
            strides=list(branches[0].stride),
        )
    ]
    if branches[0].relu is not None:
        new.append(
            helper.make_node("Relu", [conv_out], [concat.output[0]], name=f"{name}/merged/Relu")
        )
    # Nodes by their first output (unique in a valid graph; protobuf wrappers are not).
    gone = {concat.output[0]} | {b.conv.output[0] for b in branches}
    gone |= {b.relu.output[0] for b in branches if b.relu is not None}
    nodes = [_copy(onnx.NodeProto, n) for n in graph.node]
    at = min(i for i, n in enumerate(nodes) if n.output[0] in gone)
    kept = [n for n in nodes if n.output[0] not in gone]
    del graph.node[:]
    graph.node.extend(kept[:at] + new + kept[at:])
    unused = {b.conv.input[1] for b in branches} | {
        b.conv.input[2] for b in branches if len(b.conv.input) > 2 and b.conv.input[2]
    }
    still_read = {i for n in graph.node for i in n.input} | {v.name for v in graph.input}
    keep = [
        _copy(onnx.TensorProto, i)
        for i in graph.initializer
        if i.name not in unused or i.name in still_read
    ]
    del graph.initializer[:]
    graph.initializer.extend(keep)
