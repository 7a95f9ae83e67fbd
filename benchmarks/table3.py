"""Table III analogue: secure inference cost of SqueezeNet 1.1 and ResNet50.

Both parties run as separate processes on this machine over loopback TCP
(secfepas_sdk.cli.selftest). Per model it reports parameter memory, l and f,
SNNI seconds, bytes each way, rounds, peak RSS per party and fidelity against
plaintext onnxruntime (on the astronaut face and on random inputs).

Run it under the bench lock:

    flock /tmp/secfepas-bench.lock python benchmarks/table3.py --json out.json

The ONNX models come from tools/export_models.py (seeded weights; torch
needed), or from --models-dir holding squeezenet.onnx / resnet50.onnx.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
ANCHORS = {
    "squeezenet": {
        "paper_cheetah": {"seconds": 22.1, "gb": 0.67},
        "spu_0.9.5_here": {"seconds": 170.0, "gb": 0.80, "rss_gb": 4.5},
        "target": {"seconds": 60.0, "gb": 0.7, "rss_gb": 1.5},
    },
    "resnet50": {
        "paper_cheetah": {"seconds": 78.6, "gb": 2.25},
        "target": {"seconds": 300.0, "gb": 3.0},
    },
}


def astronaut_path(tmp: Path) -> Path:
    import cv2
    from skimage import data

    path = tmp / "astronaut.png"
    cv2.imwrite(str(path), cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR))
    return path


def ensure_models(models_dir: Path, names: list[str]) -> None:
    missing = [n for n in names if not (models_dir / f"{n}.onnx").is_file()]
    if missing:
        subprocess.run(
            [sys.executable, str(ROOT / "tools" / "export_models.py"), str(models_dir),
             "--models", *missing],
            check=True,
        )  # fmt: skip


def bench_model(name: str, onnx_path: Path, tmp: Path, args: argparse.Namespace) -> dict[str, Any]:
    import onnx
    import onnxruntime as ort

    from secfepas_sdk.cli.selftest import run_two_processes
    from secfepas_sdk.cli.snni import preprocess_image
    from secfepas_sdk.models.importer import import_onnx
    from secfepas_sdk.models.package import load_public

    pkg = tmp / name
    import_onnx(
        onnx_path, pkg, model_id=name, ring_bits=args.bits, frac_bits=args.frac,
        class_names=["none", "little", "moderate", "extreme"], keep_reference=False,
    )  # fmt: skip
    public = load_public(pkg)
    model = onnx.load(str(onnx_path))
    n_params = sum(int(np.prod(i.dims)) for i in model.graph.initializer)
    shape = tuple(public.manifest.input_shape)
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    inputs = {"astronaut": preprocess_image(str(args.image), public.manifest)}
    mean = np.asarray(public.manifest.mean, dtype=np.float64).reshape(1, -1, 1, 1)
    std = np.asarray(public.manifest.std, dtype=np.float64).reshape(1, -1, 1, 1)
    for i in range(args.random_inputs):
        # A random image: uniform pixels in [0, 1], normalised like a real one (the
        # plan's public input range; the client refuses anything beyond it).
        inputs[f"random{i}"] = ((rng.random(shape) - mean) / std).astype(np.float32)
    runs = []
    for label, x in inputs.items():
        plain = np.asarray(sess.run(None, {sess.get_inputs()[0].name: x})[0]).reshape(-1)
        t0 = time.perf_counter()
        run = run_two_processes(pkg, x)
        wall = time.perf_counter() - t0
        err = float(np.abs(run.logits - plain).max())
        runs.append(
            {
                "input": label,
                "seconds": run.client["total"],
                "setup_seconds": run.client["setup_seconds"],
                "infer_seconds": run.client["infer_seconds"],
                "wall_with_process_start": wall,
                "client_compute": run.client["compute"],
                "server_compute": run.server["compute"],
                "server_load_seconds": run.server["load_seconds"],
                "bytes_client_to_server": run.client["bytes_sent"],
                "bytes_server_to_client": run.client["bytes_received"],
                "rounds": run.client["rounds"],
                "peak_rss_mb": {
                    "client": run.client["peak_rss_mb"],
                    "server": run.server["peak_rss_mb"],
                },
                "max_abs_err": err,
                "argmax_match": bool(np.argmax(run.logits) == np.argmax(plain)),
                "plain_logit_range": float(np.ptp(plain)),
                "seconds_by_op": run.client["timings"],
                "bytes_by_op": run.client["by_label"],
            }
        )
        print(json.dumps({"model": name, **runs[-1]}), file=sys.stderr, flush=True)
    first = runs[0]
    total_bytes = first["bytes_client_to_server"] + first["bytes_server_to_client"]
    return {
        "model": name,
        "input_shape": list(shape),
        "parameters": n_params,
        "parameter_memory_mb": {"fp32": n_params * 4 / 1e6, "fp16": n_params * 2 / 1e6},
        "ring_bits": args.bits,
        "frac_bits": args.frac,
        "he_params": public.manifest.he_params,
        "snni_seconds": first["seconds"],
        "bytes": {
            "client_to_server": first["bytes_client_to_server"],
            "server_to_client": first["bytes_server_to_client"],
            "total_gb": total_bytes / 1e9,
        },
        "rounds": first["rounds"],
        "peak_rss_mb": first["peak_rss_mb"],
        "fidelity": {
            "max_abs_err": max(r["max_abs_err"] for r in runs),
            "argmax_match_all": all(r["argmax_match"] for r in runs),
            "inputs": [r["input"] for r in runs],
        },
        "anchors": ANCHORS.get(name, {}),
        "runs": runs,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description="Table III: SqueezeNet 1.1 and ResNet50")
    parser.add_argument("--json", type=Path, required=True, help="write the results here")
    parser.add_argument("--models", nargs="+", default=["squeezenet", "resnet50"])
    parser.add_argument("--models-dir", type=Path, default=None)
    parser.add_argument("--bits", type=int, default=37)
    parser.add_argument("--frac", type=int, default=12)
    parser.add_argument("--random-inputs", type=int, default=1)
    parser.add_argument("--image", type=Path, default=None, help="default: skimage astronaut")
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory(prefix="secfepas-table3-") as tmpdir:
        tmp = Path(tmpdir)
        models_dir = args.models_dir or tmp / "onnx"
        models_dir.mkdir(parents=True, exist_ok=True)
        ensure_models(models_dir, args.models)
        if args.image is None:
            args.image = astronaut_path(tmp)
        for name in args.models:
            results.append(bench_model(name, models_dir / f"{name}.onnx", tmp, args))
            args.json.write_text(json.dumps({"results": results}, indent=2) + "\n")
    print(json.dumps({"results": results}, indent=2))


if __name__ == "__main__":
    main()
