"""`secfepas snni selftest`: one secure inference between two local processes,
compared with plaintext onnxruntime."""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
from pathlib import Path
from typing import Any

OT_CHOICES = ("ferret", "softspoken")  # protocol.events.OT_EXTENSIONS (not imported for --help)


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    parser = subparsers.add_parser("snni", help="secure-inference engine tools")
    sub = parser.add_subparsers(dest="snni_command", metavar="ACTION")
    st = sub.add_parser(
        "selftest",
        help="run client and server as two processes over loopback TCP and compare "
        "with plaintext onnxruntime",
    )
    st.add_argument("--model", required=True, help="MODEL.onnx or a model package directory")
    st.add_argument("--input", required=True, help="an image file (a face is detected and cropped)")
    st.add_argument("--json", action="store_true", help="print the report as one JSON object")
    st.add_argument("--bits", type=int, default=37, help="ring bits l when importing an ONNX file")
    st.add_argument(
        "--frac", type=int, default=12, help="fractional bits f when importing an ONNX file"
    )
    st.add_argument(
        "--he-workers",
        type=int,
        default=1,
        help="processes the edge splits its HE layers across (default: 1, the edge's own "
        "process; 0 = every core; the edge setting he_workers)",
    )
    st.add_argument(
        "--ot",
        choices=OT_CHOICES,
        help="OT extension of both parties (default: the library default, ferret)",
    )
    st.set_defaults(handler=_selftest)
    parser.set_defaults(handler=lambda _a: parser.print_help() or 2)


def preprocess_image(path: str, manifest: Any, *, detect: bool = True) -> Any:
    """The model input for an image, built from the manifest's preprocessing contract:
    the most confident face if one is found (MTCNN), else the whole image (a centre
    crop when the contract asks for the input's aspect ratio)."""
    from secfepas_sdk._extras import require
    from secfepas_sdk.camera.preprocess import PreprocessConfig, preprocess_face
    from secfepas_sdk.errors import ConfigError

    cv2: Any = require("cv2", "camera")
    pixels = cv2.imread(path, cv2.IMREAD_COLOR)
    if pixels is None:
        raise ConfigError(f"cannot read the image {path}")
    config = PreprocessConfig.from_manifest(manifest)
    if detect:
        from secfepas_sdk.camera.detection import FaceDetector

        faces = FaceDetector().detect(pixels)
        if faces:
            return preprocess_face(pixels, faces[0].box, config)
    h, w = pixels.shape[:2]
    whole = dataclasses.replace(config, margin=0.0)
    return preprocess_face(pixels, (0.0, 0.0, float(w), float(h)), whole)


def _selftest(args: argparse.Namespace) -> int:
    import numpy as np

    from secfepas_sdk._extras import require
    from secfepas_sdk.cli.progress import Progress
    from secfepas_sdk.cli.selftest import run_two_processes
    from secfepas_sdk.errors import ConfigError
    from secfepas_sdk.models.importer import import_onnx
    from secfepas_sdk.models.package import load_public, reference_onnx

    ort: Any = require("onnxruntime", "camera")
    if args.he_workers < 0:
        raise ConfigError("--he-workers must be 0 (every core) or more")
    model = Path(args.model)
    progress = Progress("snni selftest", enabled=not args.json)
    with progress, tempfile.TemporaryDirectory(prefix="secfepas-pkg-") as tmp:
        if model.is_dir():
            package = model
            ref = reference_onnx(model)
            if ref is None:
                raise ConfigError(f"{model} keeps no private/reference.onnx to compare with")
        elif model.is_file():
            progress.update(f"importing {model}")
            package = Path(tmp) / "pkg"
            import_onnx(
                model,
                package,
                model_id=model.stem.replace(" ", "_") or "model",
                ring_bits=args.bits,
                frac_bits=args.frac,
                class_names=[f"class{i}" for i in range(_num_outputs(model))],
                keep_reference=False,
            )
            ref = model
        else:
            raise ConfigError(f"no such model file or package: {model}")
        public = load_public(package)
        m = public.manifest
        x = preprocess_image(args.input, m)
        sess = ort.InferenceSession(str(ref), providers=["CPUExecutionProvider"])
        plain = np.asarray(sess.run(None, {sess.get_inputs()[0].name: x})[0], np.float64)
        plain = plain.reshape(-1)
        progress.update("secure inference (camera and edge processes over loopback TCP)")
        run = run_two_processes(package, x, he_workers=args.he_workers, ot_extension=args.ot)
    secure = run.logits
    if public.plan.softmax:
        from secfepas_sdk.snni.runtime import softmax

        secure = softmax(secure)
    report = {
        "secure_logits": [float(v) for v in secure],
        "plain_logits": [float(v) for v in plain],
        "argmax_match": bool(np.argmax(secure) == np.argmax(plain)),
        "max_abs_err": float(np.abs(secure - plain).max()),
        "seconds": {
            "total": run.client["total"],
            "client_compute": run.client["compute"],
            "server_compute": run.server["compute"],
        },
        "bytes": {
            "client_to_server": run.client["bytes_sent"],
            "server_to_client": run.client["bytes_received"],
        },
        "rounds": run.client["rounds"],
        "peak_rss_mb": {"client": run.client["peak_rss_mb"], "server": run.server["peak_rss_mb"]},
        "ot_extension": run.client["ot_extension"],
    }
    if args.json:
        print(json.dumps(report))
    else:
        print(_human(report))
    return 0 if report["argmax_match"] else 1


def _human(report: dict[str, Any]) -> str:
    """The selftest report for a terminal (--json gives every field)."""
    seconds, sent, rss = report["seconds"], report["bytes"], report["peak_rss_mb"]
    verdict = "matches" if report["argmax_match"] else "DIFFERS FROM"
    return (
        f"secure inference: argmax {verdict} plaintext onnxruntime, "
        f"max |logit error| {report['max_abs_err']:.4g}\n"
        f"  {seconds['total']:.2f} s (compute: camera {seconds['client_compute']:.2f} s, "
        f"edge {seconds['server_compute']:.2f} s), "
        f"{sent['client_to_server'] / 1e6:.1f} MB up, "
        f"{sent['server_to_client'] / 1e6:.1f} MB down, "
        f"{report['rounds']} rounds, peak RSS camera {rss['client']:.0f} MB / "
        f"edge {rss['server']:.0f} MB, OT extension {report['ot_extension']}"
    )


def _num_outputs(path: Path) -> int:
    from secfepas_sdk._extras import require

    onnx: Any = require("onnx", "edge")
    model = onnx.load(str(path), load_external_data=False)
    dims = model.graph.output[0].type.tensor_type.shape.dim
    size = 1
    for d in dims[1:]:
        size *= max(int(d.dim_value), 1)
    return size
