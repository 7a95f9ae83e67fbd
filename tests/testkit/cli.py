"""ONNX models for the CLI tests, built with onnx.helper (seeded weights)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from onnx import TensorProto, helper, numpy_helper


def tiny_cnn(
    path: Path,
    *,
    channels: int = 3,
    size: tuple[int | str, int | str] = (32, 32),
    classes: int = 4,
    extra_nodes: tuple[str, ...] = (),
    rank: int = 4,
) -> Path:
    """Conv 3x3 stride 2 -> ReLU -> GAP -> Flatten -> Gemm, seeded weights."""
    rng = np.random.default_rng(5)
    w = rng.normal(0, 0.3, (8, channels, 3, 3)).astype(np.float32)
    fc = rng.normal(0, 0.5, (classes, 8)).astype(np.float32)
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], name="conv", strides=[2, 2], pads=[1] * 4),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node("GlobalAveragePool", ["r"], ["g"], name="gap"),
        helper.make_node("Flatten", ["g"], ["f"], name="flat"),
        helper.make_node("Gemm", ["f", "fc"], ["logits"], name="fc", transB=1),
    ]
    for i, op in enumerate(extra_nodes):  # unsupported ops, chained on the logits
        src = "logits" if i == 0 else f"extra{i - 1}"
        nodes.append(helper.make_node(op, [src], [f"extra{i}"], name=f"bad_{op.lower()}"))
    out = f"extra{len(extra_nodes) - 1}" if extra_nodes else "logits"
    shape: list[int | str] = [1, channels, *size][: rank if rank < 4 else 4]
    shape += [7] * (rank - len(shape))
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info(out, TensorProto.FLOAT, [1, classes])],
        initializer=[numpy_helper.from_array(w, "w"), numpy_helper.from_array(fc, "fc")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    path.write_bytes(model.SerializeToString())
    return path
