"""Import an ONNX model into a package: fold BN, quantise (FP16, then fixed
point), compile the plan and strip the weights from the public architecture."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from secfepas_sdk._extras import require
from secfepas_sdk.errors import ModelPackageError
from secfepas_sdk.models.package import Manifest, write_package
from secfepas_sdk.snni.compile import compile_onnx
from secfepas_sdk.snni.he.params import DEFAULT_PARAMS

DEFAULT_RING_BITS = 37
DEFAULT_FRAC_BITS = 12
# SoftSpokenOT k per op kind: k = 6 sends 22 bits per OT instead of 32 (k = 4), for
# about 2.7x the PRG work; measured on SqueezeNet in docs/snni-he.md.
DEFAULT_OT_K: dict[str, int] = {
    kind: 6 for kind in ("truncate", "relu", "relu_truncate", "maxpool")
}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _constant_signature(onnx: Any, node: Any) -> tuple[int, list[int]]:
    """(element type, dims) of a Constant node's value, read without keeping the value."""
    (attr,) = node.attribute
    kind = attr.name
    if kind == "value":
        return int(attr.t.data_type), [int(d) for d in attr.t.dims]
    if kind == "sparse_value":
        return int(attr.sparse_tensor.values.data_type), [int(d) for d in attr.sparse_tensor.dims]
    scalar = {"value_float": onnx.TensorProto.FLOAT, "value_int": onnx.TensorProto.INT64}
    lists = {
        "value_floats": (onnx.TensorProto.FLOAT, attr.floats),
        "value_ints": (onnx.TensorProto.INT64, attr.ints),
        "value_strings": (onnx.TensorProto.STRING, attr.strings),
    }
    if kind in scalar:
        return int(scalar[kind]), []
    if kind == "value_string":
        return int(onnx.TensorProto.STRING), []
    dtype, values = lists[kind]
    return int(dtype), [len(values)]


_VALUE_ATTRS = ("TENSOR", "TENSORS", "SPARSE_TENSOR", "SPARSE_TENSORS", "GRAPH", "GRAPHS")


def strip_weights(model_bytes: bytes, source: str = "the model") -> bytes:
    """The graph with no parameter value left in it (the public architecture).

    Every initializer (dense or sparse) and every Constant node becomes a typed
    graph input: name, element type and shape, no value. So a bias or BN vector
    given as a Constant never reaches a camera. Any other node attribute that
    can hold a tensor or a subgraph is refused (the secure engine runs none)."""
    onnx = require("onnx", "edge")
    try:
        model = onnx.load_from_string(model_bytes)
    except Exception as exc:  # protobuf raises its own DecodeError
        raise ModelPackageError(f"{source} is not an ONNX model: {exc}") from exc
    graph = model.graph
    inputs = {i.name for i in graph.input}

    def placeholder(name: str, dtype: int, dims: list[int]) -> None:
        if name not in inputs:
            graph.input.append(onnx.helper.make_tensor_value_info(name, dtype, dims))
            inputs.add(name)

    for init in graph.initializer:
        placeholder(init.name, init.data_type, list(init.dims))
    for sparse in graph.sparse_initializer:
        placeholder(sparse.values.name, sparse.values.data_type, list(sparse.dims))
    del graph.initializer[:]
    del graph.sparse_initializer[:]
    kept, refused = [], []
    for node in graph.node:
        if node.op_type == "Constant" and node.domain in ("", "ai.onnx"):
            if len(node.attribute) != 1 or len(node.output) != 1:
                refused.append(f"{node.name or node.output[0]} (malformed Constant)")
                continue
            placeholder(node.output[0], *_constant_signature(onnx, node))
            continue
        names = {onnx.AttributeProto.AttributeType.Name(a.type) for a in node.attribute}
        if names & set(_VALUE_ATTRS):
            label = node.name or node.output[0]
            refused.append(f"{label} ({node.op_type} with a tensor attribute)")
        kept.append(node)
    if refused:
        raise ModelPackageError(
            f"{source}: these nodes would put parameter values in the public part: "
            + ", ".join(refused)
        )
    del graph.node[:]
    graph.node.extend(kept)
    keep_info = [v for v in graph.value_info if v.name not in inputs]
    del graph.value_info[:]
    graph.value_info.extend(keep_info)
    out: bytes = model.SerializeToString()
    return out


def pixel_input_bound(mean: Sequence[float], std: Sequence[float]) -> float:
    """Public |x| bound of (p - mean) / std over pixels p in [0, 1], rounded up to
    1/1024 (so float32 preprocessing never lands just above it)."""
    if not mean or len(mean) != len(std) or min(abs(float(s)) for s in std) == 0:
        raise ModelPackageError("mean and std must be non-empty, of equal length, std != 0")
    worst = max(max(abs(m), abs(1.0 - m)) / abs(s) for m, s in zip(mean, std, strict=True))
    return math.ceil(worst * 1024 + 1) / 1024


def import_onnx(
    onnx_path: str | Path,
    out_dir: str | Path,
    *,
    model_id: str,
    version: str = "1.0.0",
    ring_bits: int = DEFAULT_RING_BITS,
    frac_bits: int = DEFAULT_FRAC_BITS,
    he_params: str = DEFAULT_PARAMS,
    class_names: Sequence[str],
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    description: str = "",
    keep_reference: bool = True,
    pixel_bound: bool = True,
    ot_k: dict[str, int] | None = None,
) -> Manifest:
    """Compile ``onnx_path`` and write a model package to ``out_dir``.

    ``pixel_bound``: the input is pixels in [0, 1] normalised by (mean, std), so
    |x| <= max((1 - mean) / std, mean / std) is public; the plan then carries the
    provable activation bounds of snni.bounds (cheaper comparisons) and the
    client refuses inputs outside that range.
    ``ot_k``: SoftSpokenOT k per op kind (default ``DEFAULT_OT_K``)."""
    try:
        raw = Path(onnx_path).read_bytes()
    except OSError as exc:
        raise ModelPackageError(f"cannot read {onnx_path}: {exc}") from exc
    onnx = require("onnx", "edge")
    plan, weights = compile_onnx(
        onnx.load_from_string(raw),
        ring_bits=ring_bits,
        frac_bits=frac_bits,
        he_params=he_params,
        input_bound=pixel_input_bound(mean, std) if pixel_bound else None,
        ot_k=DEFAULT_OT_K if ot_k is None else ot_k,
    )
    return write_package(
        out_dir,
        architecture=strip_weights(raw, str(onnx_path)),
        plan=plan,
        weights=weights,
        meta={
            "model_id": model_id,
            "version": version,
            "description": description,
            "mean": tuple(mean),
            "std": tuple(std),
            "class_names": tuple(class_names),
        },
        reference=raw if keep_reference else None,
    )
