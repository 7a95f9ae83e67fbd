"""Edge load: N cameras (1, 2, 4, 8, 16) against one edge server.

The edge runs as a real `secfepas edge serve` process with one session slot per
camera (its model host and per-session worker processes are included in the
memory figures); each camera is its own process with its own TLS session.
Records throughput, latency percentiles (steady state: the first inference of
each session, which includes the one-off setup, is reported apart), errors and
the edge's peak memory, two ways: the sum of VmRSS over its process tree (counts
the weights and libraries the workers share copy-on-write once per process) and
the sum of PSS (each shared page split between its sharers: what the edge really
occupies). ``cameras_at_5s`` is how many cameras at one frame per 5 s the
measured steady throughput would serve.

    flock /tmp/secfepas-bench.lock python benchmarks/edge_load.py --json out.json
    python benchmarks/edge_load.py --model squeezenet --cameras 1,4,16 --count 3

SqueezeNet comes from tools/export_models.py (seeded weights; torch needed) or
--models-dir holding squeezenet.onnx.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _tree_memory_mb(pid: int) -> tuple[float, float]:
    """(sum of RSS, sum of PSS) over a process and all its descendants, from /proc."""
    rss = pss = 0
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines():
                if line.startswith("Rss:"):
                    rss += int(line.split()[1])
                elif line.startswith("Pss:"):
                    pss += int(line.split()[1])
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (OSError, ValueError):
            continue
    return rss / 1024, pss / 1024


def _camera(args: tuple[int, int, str, int, str, tuple[int, ...]]) -> dict[str, Any]:
    index, port, pki_dir, count, model, shape = args
    from secfepas_sdk.camera.client import SecureInferenceClient
    from secfepas_sdk.protocol.transport import TlsFiles

    pki = Path(pki_dir)
    name = "camera-1" if index == 0 else f"camera-{index + 1}"
    tls = TlsFiles(
        ca=pki / "ca.pem", cert=pki / "cameras" / f"{name}.pem", key=pki / "cameras" / f"{name}.key"
    )
    # Uniform pixels in [0, 1], normalised with ImageNet statistics: inside every
    # imported plan's public input range.
    rng = np.random.default_rng(index)
    mean = np.asarray([0.485, 0.456, 0.406]).reshape(1, -1, 1, 1)
    std = np.asarray([0.229, 0.224, 0.225]).reshape(1, -1, 1, 1)
    x = ((rng.random(shape) - mean) / std).astype(np.float32)

    async def run() -> dict[str, Any]:
        client = SecureInferenceClient(("127.0.0.1", port), tls, model)
        out: dict[str, Any] = {"latencies": [], "errors": 0, "bytes": []}
        start = time.monotonic()
        for _ in range(count):
            try:
                a = await client.infer(x)
                out["latencies"].append(a.seconds)
                out["bytes"].append(a.total_bytes)
            except Exception as exc:  # counted, the run goes on
                out["errors"] += 1
                out.setdefault("error_kinds", []).append(type(exc).__name__)
        out["wall"] = time.monotonic() - start
        await client.close()
        return out

    return asyncio.run(run())


def run_level(n: int, count: int, tmp: Path, model: str, shape: tuple[int, ...]) -> dict[str, Any]:
    port, metrics_port = _free_port(), _free_port()
    cmd = [
        sys.executable,
        "-m",
        "secfepas_sdk.cli.main",
        "edge",
        "serve",
        "--listen",
        f"127.0.0.1:{port}",
        "--model-dir",
        str(tmp / "models"),
        "--ca",
        str(tmp / "pki" / "ca.pem"),
        "--cert",
        str(tmp / "pki" / "edge.pem"),
        "--key",
        str(tmp / "pki" / "edge.key"),
        "--metrics-port",
        str(metrics_port),
        "--max-sessions",
        str(n),
    ]
    edge = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    assert edge.stdout is not None
    edge.stdout.readline()  # "listening on ..."
    peak = [0.0, 0.0]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.2):
            rss, pss = _tree_memory_mb(edge.pid)
            peak[0], peak[1] = max(peak[0], rss), max(peak[1], pss)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        start = time.monotonic()
        with mp.get_context("spawn").Pool(n) as pool:
            results = pool.map(
                _camera, [(i, port, str(tmp / "pki"), count, model, shape) for i in range(n)]
            )
        wall = time.monotonic() - start
    finally:
        done.set()
        sampler.join()
        edge.send_signal(signal.SIGTERM)
        edge.wait(60)
    first = [r["latencies"][0] for r in results if r["latencies"]]
    steady = sorted(v for r in results for v in r["latencies"][1:])
    total = sum(len(r["latencies"]) for r in results)

    def pct(q: float) -> float:
        return float(np.percentile(steady, q)) if steady else float("nan")

    return {
        "cameras": n,
        "inferences": total,
        "errors": sum(r["errors"] for r in results),
        "wall_s": round(wall, 2),
        "throughput_per_min": round(60 * total / wall, 1),
        "first_s_mean": round(float(np.mean(first)), 3) if first else None,
        "p50_s": round(pct(50), 3),
        "p90_s": round(pct(90), 3),
        "p99_s": round(pct(99), 3),
        "mb_per_inference": round(float(np.mean([b for r in results for b in r["bytes"]])) / 1e6, 2)
        if total
        else None,
        "server_peak_rss_mb": round(peak[0], 1),
        "server_peak_pss_mb": round(peak[1], 1),
        # One frame per 5 s is 12 a minute per camera (setup time included: conservative).
        "cameras_at_5s": round(60 * total / wall / 12, 1),
    }


def prepare_model(name: str, tmp: Path, models_dir: Path | None) -> tuple[str, tuple[int, ...]]:
    """Put the model's private package under tmp/models; returns (model id, input shape)."""
    from secfepas_sdk.models.bundled import demo_model_path
    from secfepas_sdk.models.package import load_public

    (tmp / "models").mkdir(exist_ok=True)
    if name == "demo":
        (tmp / "models" / "demo").symlink_to(demo_model_path(), target_is_directory=True)
        pkg = tmp / "models" / "demo"
    else:
        from secfepas_sdk.models.importer import import_onnx

        source = models_dir or (tmp / "onnx")
        if not (source / f"{name}.onnx").is_file():
            root = Path(__file__).resolve().parent.parent
            subprocess.run(
                [sys.executable, str(root / "tools" / "export_models.py"), str(source),
                 "--models", name],
                check=True,
            )  # fmt: skip
        pkg = tmp / "models" / name
        import_onnx(
            source / f"{name}.onnx",
            pkg,
            model_id=name,
            class_names=["none", "little", "moderate", "extreme"],
            keep_reference=False,
        )
    manifest = load_public(pkg).manifest
    return str(manifest.model_id), tuple(int(v) for v in manifest.input_shape)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cameras", default="1,2,4,8,16", help="comma-separated camera counts")
    parser.add_argument("--count", type=int, default=6, help="inferences per camera")
    parser.add_argument("--model", choices=["demo", "squeezenet"], default="demo")
    parser.add_argument("--models-dir", type=Path, help="where squeezenet.onnx is (or goes)")
    parser.add_argument("--json", type=Path, help="write the results here too")
    args = parser.parse_args()
    from secfepas_sdk.certs import init_pki, issue_camera

    levels = [int(v) for v in args.cameras.split(",")]
    rows = []
    with tempfile.TemporaryDirectory(prefix="secfepas-edge-load-") as tmp_name:
        tmp = Path(tmp_name)
        init_pki(tmp / "pki")
        for i in range(2, max(levels) + 1):
            issue_camera(tmp / "pki", f"camera-{i}")
        model, shape = prepare_model(args.model, tmp, args.models_dir)
        for n in levels:
            row = {"model": args.model, **run_level(n, args.count, tmp, model, shape)}
            rows.append(row)
            print(json.dumps(row), flush=True)
    header = (
        "| model | cameras | inferences | errors | throughput (/min) | first (s) | p50 (s) "
        "| p90 (s) | p99 (s) | MB/inference | edge peak RSS sum (MB) | edge peak PSS (MB) "
        "| cameras at 1 frame/5 s |"
    )
    print("\n" + header + "\n|" + "---|" * 13)
    for r in rows:
        print(
            f"| {r['model']} | {r['cameras']} | {r['inferences']} | {r['errors']} "
            f"| {r['throughput_per_min']} | {r['first_s_mean']} | {r['p50_s']} | {r['p90_s']} "
            f"| {r['p99_s']} | {r['mb_per_inference']} | {r['server_peak_rss_mb']} "
            f"| {r['server_peak_pss_mb']} | {r['cameras_at_5s']} |"
        )
    meta = {"cpus": os.cpu_count(), "python": sys.version.split()[0], "count": args.count}
    if args.json:
        args.json.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
