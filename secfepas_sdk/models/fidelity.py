"""How faithful the deployed model is: FP32 against FP16, the fixed-point simulation
and (on a few images) real secure inference, on the provider's own images.

FP16 here means the weights rounded to half precision and computed in FP32 (what
`model quantize --fp16` writes, and what the importer does before fixed point),
so the secure cost does not change with it: the plan and the fixed-point weights
are the same. Edge side: it needs the package's private part.
"""

from __future__ import annotations

import csv
import math
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from secfepas_sdk._extras import require
from secfepas_sdk.errors import ConfigError, ModelPackageError

__all__ = ["fidelity_report", "quantize_fp16", "read_images"]

F64 = NDArray[np.float64]
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


def _half(model: Any) -> int:
    """Round every float32 initializer and Constant of ``model`` to FP16 (kept as
    float32 tensors, so every runtime and the compiler read them); returns the count."""
    onnx = require("onnx", "edge")
    numpy_helper = onnx.numpy_helper
    done = 0
    for init in model.graph.initializer:
        if init.data_type == onnx.TensorProto.FLOAT:
            arr = numpy_helper.to_array(init).astype(np.float16).astype(np.float32)
            init.CopyFrom(numpy_helper.from_array(arr, init.name))
            done += 1
    for node in model.graph.node:
        for attr in node.attribute:
            if (
                node.op_type == "Constant"
                and attr.name == "value"
                and attr.t.data_type == onnx.TensorProto.FLOAT
            ):
                arr = numpy_helper.to_array(attr.t).astype(np.float16).astype(np.float32)
                attr.t.CopyFrom(numpy_helper.from_array(arr, attr.t.name))
                done += 1
    return done


def quantize_fp16(src: str | Path, out: str | Path) -> int:
    """Write ``out``: ``src`` with FP16-rounded weights (atomically); returns how many
    tensors were rounded."""
    from secfepas_sdk.models.importer import _load_model

    model, _ = _load_model(Path(src))
    count = _half(model)
    target = Path(out)
    tmp = target.with_name(f".{target.name}.tmp")
    try:
        tmp.write_bytes(model.SerializeToString())
        tmp.replace(target)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise ModelPackageError(f"cannot write {target}: {exc}") from exc
    return count


def read_images(folder: str | Path) -> list[Path]:
    root = Path(folder)
    if not root.is_dir():
        raise ConfigError(f"--images {root}: not a folder")
    files = sorted(p for p in root.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ConfigError(f"--images {root}: no image files ({', '.join(IMAGE_SUFFIXES)})")
    return files


def _labels(path: Path, names: Sequence[str]) -> dict[str, int]:
    """CSV rows ``file,label`` (label: class index or class name); a header is skipped."""
    out: dict[str, int] = {}
    try:
        rows = list(csv.reader(path.read_text(encoding="utf-8").splitlines()))
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"--labels {path}: {exc}") from exc
    for i, row in enumerate(rows):
        if len(row) < 2:
            raise ConfigError(f"--labels {path}, line {i + 1}: expected file,label")
        file, label = row[0].strip(), row[1].strip()
        if label in names:
            out[file] = list(names).index(label)
        elif label.isdigit() and int(label) < len(names):
            out[file] = int(label)
        elif i == 0:
            continue  # a header
        else:
            raise ConfigError(f"--labels {path}, line {i + 1}: unknown class {label!r}")
    return out


def _tensors(files: list[Path], manifest: Any) -> list[NDArray[np.float32]]:
    """Each image as the contract makes it, the whole image being the box."""
    import dataclasses

    from secfepas_sdk.models.preprocess import PreprocessConfig, preprocess_face

    cv2: Any = require("cv2", "camera")
    config = dataclasses.replace(PreprocessConfig.from_manifest(manifest), margin=0.0)
    out = []
    for path in files:
        pixels = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if pixels is None:
            raise ConfigError(f"cannot read the image {path}")
        h, w = pixels.shape[:2]
        out.append(preprocess_face(pixels, (0.0, 0.0, float(w), float(h)), config))
    return out


def _onnx_logits(model_bytes: bytes, xs: list[NDArray[np.float32]]) -> list[F64]:
    ort: Any = require("onnxruntime", "camera")
    sess = ort.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    return [np.asarray(sess.run(None, {name: x})[0], np.float64).reshape(-1) for x in xs]


def _secure_logits(private: Any, xs: list[NDArray[np.float32]]) -> tuple[list[F64], dict[str, int]]:
    from secfepas_sdk.snni.channel import run_pair
    from secfepas_sdk.snni.runtime import ClientRuntime, ServerRuntime

    client, server = ClientRuntime(private.plan), ServerRuntime(private.plan, private.weights)

    def camera(ch: Any) -> tuple[list[F64], dict[str, int]]:
        client.setup(ch)
        logits = [client.infer(ch, x) for x in xs]
        return logits, {"bytes_up": ch.stats.bytes_sent, "bytes_down": ch.stats.bytes_received}

    def edge(ch: Any) -> None:
        server.setup(ch)
        for _ in xs:
            server.infer(ch)

    try:
        out, _ = run_pair(camera, edge)
    finally:
        client.close()
        server.close()
    return out


def _compare(name: str, got: list[F64], ref: list[F64], labels: list[int | None]) -> dict[str, Any]:
    n = len(got)
    agree = sum(int(np.argmax(g) == np.argmax(r)) for g, r in zip(got, ref, strict=False))
    errors = [np.abs(g - r) for g, r in zip(got, ref, strict=False)]
    row: dict[str, Any] = {
        "variant": name,
        "images": n,
        "top1_agreement_with_fp32": agree / n if n else math.nan,
        "max_logit_error": float(max(e.max() for e in errors)) if n else math.nan,
        "mean_logit_error": float(np.mean([e.mean() for e in errors])) if n else math.nan,
    }
    known = [(g, y) for g, y in zip(got, labels, strict=False) if y is not None]
    if known:
        row["accuracy"] = sum(int(np.argmax(g) == y) for g, y in known) / len(known)
    return row


def fidelity_report(
    model: str | Path,
    images: str | Path,
    *,
    labels: str | Path | None = None,
    secure: int = 0,
) -> dict[str, Any]:
    """FP32, FP16, fixed point and (on the first ``secure`` images) secure inference.

    ``model``: a package directory (with its private part and reference.onnx) or an
    ONNX file (imported with the default contract into a temporary package)."""
    from secfepas_sdk.models.importer import _load_model, import_onnx
    from secfepas_sdk.models.package import load_private, reference_onnx
    from secfepas_sdk.snni.simulate import simulate

    if secure < 0:
        raise ConfigError("--secure must be >= 0")
    src = Path(model)
    files = read_images(images)
    with tempfile.TemporaryDirectory(prefix="secfepas-fidelity-") as tmp:
        if src.is_dir():
            package, ref = src, reference_onnx(src)
            if ref is None:
                raise ConfigError(f"{src} keeps no private/reference.onnx to compare with")
        else:
            onnx_model, _ = _load_model(src)
            outputs = onnx_model.graph.output[0].type.tensor_type.shape.dim
            count = math.prod(max(int(d.dim_value), 1) for d in outputs[1:])
            package, ref = Path(tmp) / "pkg", src
            classes = [f"class{i}" for i in range(count)]
            import_onnx(src, package, model_id="fidelity", class_names=classes)
        private = load_private(package)
        names = private.manifest.class_names
        truth = _labels(Path(labels), names) if labels is not None else {}
        wanted = [truth.get(f.name) for f in files]
        xs = _tensors(files, private.manifest)
        fp32_model, _ = _load_model(ref)
        fp32 = _onnx_logits(fp32_model.SerializeToString(), xs)
        _half(fp32_model)
        fp16 = _onnx_logits(fp32_model.SerializeToString(), xs)
        fixed = [simulate(private.plan, private.weights, x).reshape(-1) for x in xs]
        rows = [
            _compare("fp32", fp32, fp32, wanted),
            _compare("fp16", fp16, fp32, wanted),
            _compare("fixed_point", fixed, fp32, wanted),
        ]
        traffic: dict[str, int] = {}
        if secure:
            got, traffic = _secure_logits(private, xs[:secure])
            rows.append(_compare("secure", got, fp32[:secure], wanted[:secure]))
    return {
        "model": private.manifest.fingerprint,
        "images": len(files),
        "labelled": sum(y is not None for y in wanted),
        "variants": rows,
        "secure_traffic": traffic,
    }
