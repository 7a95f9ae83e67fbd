"""Import an ONNX model into a package: fold BN, quantise (FP16, then fixed
point), compile the plan and strip the weights from the public architecture."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

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


def strip_weights(model_bytes: bytes) -> bytes:
    """The graph with every initializer turned into a typed graph input (no values)."""
    onnx = require("onnx", "edge")
    model = onnx.load_from_string(model_bytes)
    graph = model.graph
    existing = {i.name for i in graph.input}
    for init in graph.initializer:
        if init.name not in existing:
            graph.input.append(
                onnx.helper.make_tensor_value_info(init.name, init.data_type, list(init.dims))
            )
    del graph.initializer[:]
    for node in graph.node:
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value" and attr.t.ByteSize() > 1024:
                    raise ModelPackageError("large Constant nodes would leak weights; fold them")
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
        architecture=strip_weights(raw),
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
