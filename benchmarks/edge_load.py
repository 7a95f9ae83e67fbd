"""Edge load: N cameras (1, 2, 4) against one edge server, bundled demo model.

The edge runs as a real `secfepas edge serve` process (its worker processes
included in the RSS figure); each camera is its own process with its own TLS
session. Records throughput, latency percentiles (steady state: the first
inference of each session, which includes the one-off setup, is reported
apart), errors and the server's peak RSS.

    flock /tmp/secfepas-bench.lock python benchmarks/edge_load.py --json out.json
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

MODEL = "demo-pain-cnn"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _tree_rss_mb(pid: int) -> float:
    """RSS of a process and all its descendants, from /proc."""
    total = 0
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (OSError, ValueError):
            continue
    return total / 1024


def _camera(args: tuple[int, int, str, int, str]) -> dict[str, Any]:
    index, port, pki_dir, count, model = args
    from secfepas_sdk.camera.client import SecureInferenceClient
    from secfepas_sdk.protocol.transport import TlsFiles

    pki = Path(pki_dir)
    name = "camera-1" if index == 0 else f"camera-{index + 1}"
    tls = TlsFiles(
        ca=pki / "ca.pem", cert=pki / "cameras" / f"{name}.pem", key=pki / "cameras" / f"{name}.key"
    )
    x = np.random.default_rng(index).standard_normal((1, 3, 64, 64)).astype(np.float32)

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


def run_level(n: int, count: int, tmp: Path) -> dict[str, Any]:
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
    peak = [0.0]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.2):
            peak[0] = max(peak[0], _tree_rss_mb(edge.pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        start = time.monotonic()
        with mp.get_context("spawn").Pool(n) as pool:
            results = pool.map(
                _camera, [(i, port, str(tmp / "pki"), count, MODEL) for i in range(n)]
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
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cameras", default="1,2,4", help="comma-separated camera counts")
    parser.add_argument("--count", type=int, default=6, help="inferences per camera")
    parser.add_argument("--json", type=Path, help="write the results here too")
    args = parser.parse_args()
    from secfepas_sdk.certs import init_pki, issue_camera
    from secfepas_sdk.models.bundled import demo_model_path

    levels = [int(v) for v in args.cameras.split(",")]
    rows = []
    with tempfile.TemporaryDirectory(prefix="secfepas-edge-load-") as tmp_name:
        tmp = Path(tmp_name)
        init_pki(tmp / "pki")
        for i in range(2, max(levels) + 1):
            issue_camera(tmp / "pki", f"camera-{i}")
        (tmp / "models").mkdir()
        (tmp / "models" / "demo").symlink_to(demo_model_path(), target_is_directory=True)
        for n in levels:
            row = run_level(n, args.count, tmp)
            rows.append(row)
            print(json.dumps(row), flush=True)
    header = (
        "| cameras | inferences | errors | throughput (/min) | first (s) | p50 (s) | p90 (s) "
        "| p99 (s) | MB/inference | edge peak RSS (MB) |"
    )
    print("\n" + header + "\n|" + "---|" * 10)
    for r in rows:
        print(
            f"| {r['cameras']} | {r['inferences']} | {r['errors']} | {r['throughput_per_min']} "
            f"| {r['first_s_mean']} | {r['p50_s']} | {r['p90_s']} | {r['p99_s']} "
            f"| {r['mb_per_inference']} | {r['server_peak_rss_mb']} |"
        )
    meta = {"cpus": os.cpu_count(), "python": sys.version.split()[0], "count": args.count}
    if args.json:
        args.json.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
