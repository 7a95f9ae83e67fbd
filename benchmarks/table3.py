"""Table III analogue: secure inference cost of SqueezeNet 1.1 and ResNet50.

Both parties run as separate processes on this machine over loopback TCP
(secfepas_sdk.cli.selftest). Per model (and per OT backend given with --ot) it
reports parameter memory, l and f, SNNI seconds, bytes each way, rounds, each
party's CPU-seconds, peak RSS per party and fidelity against plaintext
onnxruntime (on the astronaut face and on random inputs), and per op kind the
seconds, CPU-seconds per party, bytes each way and rounds. With --cheetah it runs
OpenCheetah (the paper's engine, built by hand under /tmp as
../shared/anchors/opencheetah/README.md says) right after ours in the same run,
and prints the ratios ours / Cheetah for time and bytes.

Run it on a quiet machine, under the bench lock:

    flock /tmp/secfepas-bench.lock python benchmarks/table3.py --json out.json --cheetah

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
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
import cheetah_anchor  # noqa: E402 - a sibling script, not a package

from secfepas_sdk.protocol.events import OT_EXTENSIONS, suites_for  # noqa: E402

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


def class_names(onnx_path: Path) -> list[str]:
    """The four PSPI classes for a pain model; numbered classes for any other head (the
    ImageNet MobileNetV2 of tools/export_models.py has 1000)."""
    import onnx

    dims = onnx.load(str(onnx_path), load_external_data=False).graph.output[0].type
    count = dims.tensor_type.shape.dim[-1].dim_value
    pspi = ["none", "little", "moderate", "extreme"]
    return pspi if count in (0, len(pspi)) else [f"class-{i}" for i in range(count)]


def bench_model(
    name: str, onnx_path: Path, tmp: Path, args: argparse.Namespace, ot: str
) -> dict[str, Any]:
    import onnx
    import onnxruntime as ort

    from secfepas_sdk.cli.selftest import run_two_processes
    from secfepas_sdk.cli.snni import preprocess_image
    from secfepas_sdk.models.importer import import_onnx
    from secfepas_sdk.models.package import load_public

    pkg = tmp / name
    if not pkg.is_dir():  # the same package for every OT backend
        import_onnx(
            onnx_path, pkg, model_id=name, ring_bits=args.bits, frac_bits=args.frac,
            class_names=class_names(onnx_path), keep_reference=False,
            **({} if args.link_mbps is None else {"link_mbps": args.link_mbps}),
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
        run = run_two_processes(pkg, x, ot_extension=ot, he_workers=args.he_workers)
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
                "by_kind": _by_kind(run.client, run.server),
            }
        )
        print(json.dumps({"model": name, "ot": ot, **runs[-1]}), file=sys.stderr, flush=True)
    first = runs[0]
    total_bytes = first["bytes_client_to_server"] + first["bytes_server_to_client"]
    return {
        "model": name,
        "ot_extension": ot,
        "input_shape": list(shape),
        "parameters": n_params,
        "parameter_memory_mb": {"fp32": n_params * 4 / 1e6, "fp16": n_params * 2 / 1e6},
        "ring_bits": args.bits,
        "frac_bits": args.frac,
        "he_params": public.manifest.he_params,
        "link_mbps": args.link_mbps,  # None: the importer's default
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
        "cpu_seconds": {"camera": first["client_compute"], "edge": first["server_compute"]},
        "by_kind": first["by_kind"],
        "anchors": ANCHORS.get(name, {}),
        "runs": runs,
    }


def _by_kind(client: dict[str, Any], server: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Per op kind: the camera's wall seconds, each party's CPU-seconds, bytes each way
    and rounds (labels that are no op, such as the OT setup, stand for themselves)."""
    kinds = sorted(set(client["by_kind"]) | set(client["timings"]))
    return {
        kind: {
            "seconds": client["timings"].get(kind, 0.0),
            "cpu_camera": client["cpu_timings"].get(kind, 0.0),
            "cpu_edge": server["cpu_timings"].get(kind, 0.0),
            **client["by_kind"].get(kind, {"bytes_up": 0, "bytes_down": 0, "rounds": 0}),
        }
        for kind in kinds
    }


def run_cheetah(name: str, args: argparse.Namespace) -> dict[str, Any] | None:
    """OpenCheetah on the same model, right after ours (None: not asked, or no such net)."""
    net = cheetah_anchor.NETS.get(name)
    if not args.cheetah or net is None:
        return None
    why = cheetah_anchor.available(args.cheetah_dir)
    if why is not None:
        raise SystemExit(f"table3: --cheetah: {why}")
    return asdict(
        cheetah_anchor.run(net, threads=args.cheetah_threads, anchor_dir=args.cheetah_dir)
    )


def print_table(results: list[dict[str, Any]]) -> None:
    head = (
        "| model | OT | SNNI s | GB (up / down) | rounds | CPU-s camera / edge | peak RSS MB "
        "camera / edge | fidelity | Cheetah s / GB / rounds | ours / Cheetah time, bytes |"
    )
    print(head)
    print("|" + "---|" * head.count(" | ") + "---|")
    for r in results:
        b, c = r["bytes"], r.get("cheetah")
        ours = f"{r['snni_seconds']:.1f}"
        up, down = b["client_to_server"] / 1e6, b["server_to_client"] / 1e6
        gb = f"{b['total_gb']:.3f} ({up:.0f} / {down:.0f} MB)"
        cpu = f"{r['cpu_seconds']['camera']:.1f} / {r['cpu_seconds']['edge']:.1f}"
        rss = f"{r['peak_rss_mb']['client']:.0f} / {r['peak_rss_mb']['server']:.0f}"
        fid = r["fidelity"]
        fidelity = (
            f"err {fid['max_abs_err']:.4g}, argmax {'ok' if fid['argmax_match_all'] else 'WRONG'}"
        )
        anchor, ratio = "not run", ""
        if c is not None:
            anchor = f"{c['seconds']:.1f} / {c['bytes_total'] / 1e9:.3f} / {c['rounds']}"
            t_ratio = r["snni_seconds"] / c["seconds"]
            ratio = f"{t_ratio:.2f}, {b['total_gb'] * 1e9 / c['bytes_total']:.2f}"
        cells = [r["model"], r["ot_extension"], ours, gb, str(r["rounds"]), cpu, rss, fidelity]
        cells += [anchor, ratio]
        print("| " + " | ".join(cells) + " |")
    for r in results:
        print(
            f"\n{r['model']} on {r['ot_extension']}, per op kind "
            "(camera wall s; CPU-s per party; MB each way; rounds):"
        )
        print("| op kind | s | CPU-s camera | CPU-s edge | MB up | MB down | rounds |")
        print("|---|---|---|---|---|---|---|")
        for kind, k in r["by_kind"].items():
            print(
                f"| {kind} | {k['seconds']:.2f} | {k['cpu_camera']:.2f} | {k['cpu_edge']:.2f} | "
                f"{k['bytes_up'] / 1e6:.1f} | {k['bytes_down'] / 1e6:.1f} | {k['rounds']} |"
            )


def parse_ot(parser: argparse.ArgumentParser, value: str | None) -> list[str]:
    """The --ot list (default: the library's OT extension), refused if unknown or repeated."""
    from secfepas_sdk.snni.ot.extension import DEFAULT_EXTENSION

    if value is None:
        return [DEFAULT_EXTENSION]
    backends = [part.strip() for part in value.split(",")]
    try:
        suites_for(tuple(backends))
    except ValueError as exc:
        parser.error(f"--ot: {exc}")
    return backends


def main() -> None:
    parser = argparse.ArgumentParser(description="Table III: SqueezeNet 1.1 and ResNet50")
    parser.add_argument("--json", type=Path, required=True, help="write the results here")
    parser.add_argument("--models", nargs="+", default=["squeezenet", "resnet50"])
    parser.add_argument("--models-dir", type=Path, default=None)
    parser.add_argument("--bits", type=int, default=37)
    parser.add_argument("--frac", type=int, default=12)
    parser.add_argument("--random-inputs", type=int, default=1)
    parser.add_argument(
        "--link-mbps",
        type=float,
        default=None,
        help="import with tilings priced for a camera link of this rate (model import's "
        "--link-mbps; default: the importer's, 100)",
    )
    parser.add_argument("--image", type=Path, default=None, help="default: skimage astronaut")
    parser.add_argument(
        "--ot",
        default=None,
        metavar="EXT[,EXT]",
        help=f"OT extensions to run each model on, from {', '.join(OT_EXTENSIONS)} "
        "(default: the library default)",
    )
    parser.add_argument(
        "--cheetah", action="store_true", help="also run OpenCheetah on each model, same run"
    )
    parser.add_argument(
        "--he-workers",
        type=int,
        default=1,
        help="the edge's HE block processes for one inference (0: every core; default 1)",
    )
    parser.add_argument("--cheetah-threads", type=int, default=1, help="threads per party")
    parser.add_argument(
        "--cheetah-dir", type=Path, default=cheetah_anchor.DEFAULT_ANCHOR_DIR,
        help="the anchor's runner (default: ../shared/anchors/opencheetah)",
    )  # fmt: skip
    args = parser.parse_args()
    backends = parse_ot(parser, args.ot)
    results = []
    with tempfile.TemporaryDirectory(prefix="secfepas-table3-") as tmpdir:
        tmp = Path(tmpdir)
        models_dir = args.models_dir or tmp / "onnx"
        models_dir.mkdir(parents=True, exist_ok=True)
        ensure_models(models_dir, args.models)
        if args.image is None:
            args.image = astronaut_path(tmp)
        for name in args.models:
            for i, ot in enumerate(backends):
                result = bench_model(name, models_dir / f"{name}.onnx", tmp, args, ot)
                result["cheetah"] = run_cheetah(name, args) if i == 0 else None
                results.append(result)
                args.json.write_text(json.dumps({"results": results}, indent=2) + "\n")
    print_table(results)


if __name__ == "__main__":
    main()
