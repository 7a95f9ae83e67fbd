"""Import an ONNX model into a model package.

The compiler (:func:`secfepas_sdk.snni.compile.compile_onnx`) folds BN,
quantises (FP16, then fixed point) and builds the plan and the weights; this
module chooses the ring and OT parameters, strips every parameter value from
the public architecture, fills the manifest and writes the package."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from secfepas_sdk._extras import require
from secfepas_sdk.errors import InvalidValueError, ModelPackageError, SnniError
from secfepas_sdk.models.contract import (
    DEFAULT_MARGIN,
    PreprocessContract,
    default_contract,
)
from secfepas_sdk.models.package import Manifest, write_package
from secfepas_sdk.snni.compile import compile_onnx
from secfepas_sdk.snni.he.flooding import DEFAULT_BUDGET, CircuitPrivacy
from secfepas_sdk.snni.he.prices import DEFAULT_LINK_MBPS

DEFAULT_RING_BITS = 37
DEFAULT_FRAC_BITS = 12
# SoftSpokenOT k per op kind: k = 6 sends 22 bits per OT instead of 32 (k = 4), for
# about 2.7x the PRG work; measured on SqueezeNet in docs/snni-he.md.
DEFAULT_OT_K: dict[str, int] = {
    kind: 6 for kind in ("truncate", "relu", "relu_truncate", "maxpool")
}


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


def _load_model(path: Path) -> tuple[Any, bytes]:
    """The ONNX ModelProto of ``path`` and its bytes, or one clear error naming the file."""
    onnx = require("onnx", "edge")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ModelPackageError(f"cannot read {path}: {exc}") from exc
    try:
        model = onnx.load_from_string(raw)
    except Exception as exc:  # protobuf's DecodeError and friends
        raise ModelPackageError(f"{path} is not an ONNX model ({type(exc).__name__})") from exc
    if not model.graph.node or not model.graph.input or not model.opset_import:
        raise ModelPackageError(f"{path} is not an ONNX model (no graph, inputs or opset)")
    return model, raw


def _input_dims(model: Any, path: Path) -> tuple[Any, list[int]]:
    """The model's one data input (not an initializer) and its dims (0 = dynamic)."""
    inits = {i.name for i in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in inits]
    if len(inputs) != 1:
        raise ModelPackageError(f"{path}: the model must have one input, it has {len(inputs)}")
    dims = [int(d.dim_value) for d in inputs[0].type.tensor_type.shape.dim]
    if len(dims) != 4:
        raise ModelPackageError(
            f"{path}: the input {inputs[0].name!r} has rank {len(dims)}; "
            "need 4 (NCHW: batch 1, channels, height, width)"
        )
    return inputs[0], dims


def resolve_contract(
    model: Any,
    path: Path,
    *,
    size: tuple[int, int] | None = None,
    colour_order: str | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    crop_margin: float = DEFAULT_MARGIN,
    crop_square: bool = True,
    interpolation: str = "area",
) -> PreprocessContract:
    """The preprocessing contract: each option given, else read from the ONNX input.

    A dynamic height or width is fixed to ``size`` in ``model`` (so the plan is
    compiled for it); a ``size`` that differs from a fixed ONNX size is an error."""
    inp, dims = _input_dims(model, path)
    channels = dims[1]
    if channels == 0:
        raise ModelPackageError(f"{path}: the input's channel count is dynamic; fix it in the ONNX")
    if size is not None:
        for axis, (have, want) in enumerate(zip(dims[2:], size, strict=True)):
            if have and have != want:
                raise ModelPackageError(
                    f"{path}: --size {size[0]}x{size[1]} does not match the ONNX input "
                    f"{dims[2]}x{dims[3]} (height x width)"
                )
            if not have:
                inp.type.tensor_type.shape.dim[axis + 2].dim_value = want
                dims[axis + 2] = want
    if not dims[2] or not dims[3]:
        raise ModelPackageError(
            f"{path}: the input's height or width is dynamic; give --size HEIGHTxWIDTH"
        )
    if dims[0] not in (0, 1):
        raise ModelPackageError(f"{path}: the input's batch is {dims[0]}; need 1")
    return default_contract(
        [1, *dims[1:]],
        colour_order=colour_order,
        mean=mean,
        std=std,
        crop_margin=crop_margin,
        crop_square=crop_square,
        interpolation=interpolation,
        source=str(path),
    )


def import_onnx(
    onnx_path: str | Path,
    out_dir: str | Path,
    *,
    model_id: str,
    version: str = "1.0.0",
    ring_bits: int = DEFAULT_RING_BITS,
    frac_bits: int = DEFAULT_FRAC_BITS,
    he_params: str | None = None,
    circuit_privacy: CircuitPrivacy | None = DEFAULT_BUDGET,
    class_names: Sequence[str],
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    colour_order: str | None = None,
    size: tuple[int, int] | None = None,
    crop_margin: float = DEFAULT_MARGIN,
    crop_square: bool = True,
    interpolation: str = "area",
    description: str = "",
    keep_reference: bool = True,
    pixel_bound: bool = True,
    ot_k: dict[str, int] | None = None,
    link_mbps: float | None = DEFAULT_LINK_MBPS,
) -> Manifest:
    """Compile ``onnx_path`` and write a model package to ``out_dir`` (atomically:
    a failed import leaves nothing behind, and an older package stays whole).

    The preprocessing contract (``mean`` ... ``interpolation``) defaults from the
    ONNX input: 3 channels -> RGB with ImageNet mean/std, 1 channel -> GRAY in [0, 1].
    ``pixel_bound``: the input is pixels in [0, 1] normalised by (mean, std), so
    |x| <= max((1 - mean) / std, mean / std) is public; the plan then carries the
    provable activation bounds of snni.bounds (cheaper comparisons) and the
    client refuses inputs outside that range.
    ``ot_k``: SoftSpokenOT k per op kind (default ``DEFAULT_OT_K``).
    ``circuit_privacy``: the budget the manifest states and the flooding is sized to;
    ``he_params`` None takes the cheapest parameter set that meets it (compile_onnx).
    ``link_mbps``: the HE tilings are priced for a camera link of that rate
    (compile_onnx); None prices the edge's time alone."""
    path = Path(onnx_path)
    model, _raw = _load_model(path)
    contract = resolve_contract(
        model,
        path,
        size=size,
        colour_order=colour_order,
        mean=mean,
        std=std,
        crop_margin=crop_margin,
        crop_square=crop_square,
        interpolation=interpolation,
    )
    try:
        plan, weights = compile_onnx(
            model,
            ring_bits=ring_bits,
            frac_bits=frac_bits,
            he_params=he_params,
            circuit_privacy=circuit_privacy,
            input_bound=pixel_input_bound(contract.mean, contract.std) if pixel_bound else None,
            ot_k=DEFAULT_OT_K if ot_k is None else ot_k,
            link_mbps=link_mbps,
        )
    except (SnniError, InvalidValueError) as exc:
        raise ModelPackageError(f"{path}: {exc}") from exc
    outputs = int(np.prod(plan.output_shape))
    if outputs != len(class_names):
        raise ModelPackageError(
            f"{path}: the model has {outputs} outputs but {len(class_names)} class names "
            f"were given ({', '.join(class_names)})"
        )
    resolved = model.SerializeToString()  # with any dynamic size fixed
    return write_package(
        out_dir,
        architecture=strip_weights(resolved, str(path)),
        plan=plan,
        weights=weights,
        meta={
            "model_id": model_id,
            "version": version,
            "description": description,
            "preprocess": contract,
            "class_names": tuple(class_names),
        },
        reference=resolved if keep_reference else None,
    )
