"""Edge load: N cameras (1, 2, 4, 8, 16) against one edge server.

The edge runs as a real `secfepas edge serve` process with one session slot per
camera (its model host and per-session worker processes are included in the
memory and CPU figures); each camera is its own process with its own TLS session.
Records throughput, latency percentiles (steady state: the first inference of
each session, which includes the one-off setup, is reported apart), errors and
the edge's peak memory, two ways: the sum of VmRSS over its process tree (counts
the weights and libraries the workers share copy-on-write once per process) and
the sum of PSS (each shared page split between its sharers: what the edge really
occupies).

Cost per frame, for sizing: every camera runs its first inference (session
setup included), then all wait at a barrier; the edge tree's CPU-seconds are
read there and again at a second barrier after the last inference, before any
session closes; the cameras stay held at each barrier until the read is done.
Their difference over the steady inferences is
``edge_cpu_s_per_inference``, c; the first phase gives
``edge_setup_cpu_s_per_session``. CPU-seconds, unlike throughput, hardly depend
on what else runs on the machine, so an edge with N cores serves about
``N * u * T / c`` cameras at one frame per T seconds when it may keep a share u
of its cores busy (README, "Sizing"); ``cameras_per_core_at_5s`` is ``5 / c``
(u = 1). ``cameras_at_5s`` is what this run's own throughput would serve, on
this machine, with the cameras sharing its cores.

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
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from testkit.ports import free_port  # noqa: E402
from testkit.proctree import tree_cpu_s, tree_memory  # noqa: E402

BARRIER_S = 3600.0  # how long a camera may wait for the others (16 SqueezeNet setups)
_barriers: tuple[Any, Any] | None = None  # (after the first inference, after the last)


def _init_camera(steady: Any, done: Any) -> None:
    global _barriers
    _barriers = (steady, done)


def _meet(barrier: Any) -> bool:
    """Wait for every camera and the parent; False if one of them never came."""
    try:
        barrier.wait(BARRIER_S)
    except threading.BrokenBarrierError:
        return False
    return True


def _hold(barrier: Any) -> None:
    """A camera's stop: arrive, then wait again until the parent has read the edge's CPU
    (the barrier is cyclic). Released at once, the cameras would start inferring, or
    close their sessions, while the parent still reads /proc: a session process that
    ends is reaped by the kernel (the model host ignores SIGCHLD), so its CPU-seconds
    vanish from the tree, and the per-inference figure read low at 8 and 16 cameras."""
    if _meet(barrier):
        _meet(barrier)


def _camera(args: tuple[int, int, str, int, str, tuple[int, ...]]) -> dict[str, Any]:
    index, port, pki_dir, count, model, shape = args
    assert _barriers is not None, "run through the pool's initializer"
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
        cpu = 0.0
        for i in range(count):
            if i == 1:  # the steady phase starts for every camera at once
                await asyncio.to_thread(_hold, _barriers[0])
                cpu = time.process_time()
            try:
                a = await client.infer(x)
                out["latencies"].append(a.seconds)
                out["bytes"].append(a.total_bytes)
            except Exception as exc:  # counted, the run goes on
                out["errors"] += 1
                out.setdefault("error_kinds", []).append(type(exc).__name__)
        if count == 1:
            await asyncio.to_thread(_hold, _barriers[0])
            cpu = time.process_time()
        out["steady_cpu_s"] = time.process_time() - cpu
        out["wall"] = time.monotonic() - start
        await asyncio.to_thread(_hold, _barriers[1])  # before any session closes
        await client.close()
        return out

    return asyncio.run(run())


def run_level(
    n: int, count: int, tmp: Path, model: str, shape: tuple[int, ...], ot: str | None = None
) -> dict[str, Any]:
    port, metrics_port = free_port(), free_port()
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
        *(["--ot", ot] if ot else []),
    ]
    edge = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    assert edge.stdout is not None
    edge.stdout.readline()  # "listening on ..."
    peak = [0.0, 0.0]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.2):
            mem = tree_memory(edge.pid)
            peak[0], peak[1] = max(peak[0], mem.rss_mb), max(peak[1], mem.pss_mb)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    ctx = mp.get_context("spawn")
    steady_at, done_at = ctx.Barrier(n + 1), ctx.Barrier(n + 1)  # n cameras and this process
    cpu: dict[str, float] = {}
    try:
        cpu["idle"] = tree_cpu_s(edge.pid)
        start = time.monotonic()
        with ctx.Pool(n, initializer=_init_camera, initargs=(steady_at, done_at)) as pool:
            pending = pool.map_async(
                _camera, [(i, port, str(tmp / "pki"), count, model, shape) for i in range(n)]
            )
            for key, barrier in (("steady", steady_at), ("done", done_at)):
                if _meet(barrier):  # every camera is waiting: nothing runs or ends now
                    cpu[key] = tree_cpu_s(edge.pid)
                    _meet(barrier)  # let them go
            results = pending.get()
        wall = time.monotonic() - start
    finally:
        done.set()
        sampler.join()
        edge.send_signal(signal.SIGTERM)
        edge.wait(60)
    first = [r["latencies"][0] for r in results if r["latencies"]]
    steady = sorted(v for r in results for v in r["latencies"][1:])
    total = sum(len(r["latencies"]) for r in results)
    cost = frame_costs(cpu, n, len(steady), [r["steady_cpu_s"] for r in results])

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
        **cost,
    }


def frame_costs(
    cpu: dict[str, float], sessions: int, steady: int, camera_cpu: list[float]
) -> dict[str, float | None]:
    """CPU-seconds per steady inference (edge and camera), per session setup, and the
    cameras one edge core serves at one frame per 5 s (``5 / c``; None when unmeasured)."""
    edge = setup = per_core = camera = None
    if steady and "steady" in cpu and "done" in cpu:
        edge = (cpu["done"] - cpu["steady"]) / steady
        camera = sum(camera_cpu) / steady
        # The first phase is one setup and one inference per session.
        setup = max(0.0, (cpu["steady"] - cpu["idle"]) / sessions - edge)
        per_core = 5.0 / edge if edge > 0 else None
    return {
        "edge_cpu_s_per_inference": None if edge is None else round(edge, 3),
        "edge_setup_cpu_s_per_session": None if setup is None else round(setup, 3),
        "camera_cpu_s_per_inference": None if camera is None else round(camera, 3),
        "cameras_per_core_at_5s": None if per_core is None else round(per_core, 1),
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


def _levels(text: str) -> list[int]:
    try:
        levels = [int(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of camera counts: {text!r}") from None
    if not levels or min(levels) < 1:
        raise argparse.ArgumentTypeError("camera counts must be >= 1")
    return levels


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--cameras", type=_levels, default="1,2,4,8,16", help="comma-separated camera counts"
    )
    parser.add_argument("--count", type=int, default=6, help="inferences per camera (>= 2)")
    parser.add_argument("--model", choices=["demo", "squeezenet"], default="demo")
    parser.add_argument("--models-dir", type=Path, help="where squeezenet.onnx is (or goes)")
    parser.add_argument(
        "--ot",
        help="OT extensions the edge allows (its --ot; default: both, so cameras get Ferret)",
    )
    parser.add_argument("--json", type=Path, help="write the results here too")
    args = parser.parse_args(argv)
    if args.count < 2:
        parser.error("--count must be >= 2: the first inference of a session is the setup")
    from secfepas_sdk.certs import init_pki, issue_camera

    levels: list[int] = args.cameras
    rows = []
    with tempfile.TemporaryDirectory(prefix="secfepas-edge-load-") as tmp_name:
        tmp = Path(tmp_name)
        init_pki(tmp / "pki")
        for i in range(2, max(levels) + 1):
            issue_camera(tmp / "pki", f"camera-{i}")
        model, shape = prepare_model(args.model, tmp, args.models_dir)
        for n in levels:
            row = {
                "model": args.model,
                "ot": args.ot or "default",
                **run_level(n, args.count, tmp, model, shape, args.ot),
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
    header = (
        "| model | cameras | inferences | errors | throughput (/min) | first (s) | p50 (s) "
        "| p90 (s) | p99 (s) | MB/inference | edge peak RSS sum (MB) | edge peak PSS (MB) "
        "| edge CPU-s/inference | edge setup CPU-s | camera CPU-s/inference "
        "| cameras per edge core at 1 frame/5 s |"
    )
    print("\n" + header + "\n|" + "---|" * 16)
    for r in rows:
        print(
            f"| {r['model']} | {r['cameras']} | {r['inferences']} | {r['errors']} "
            f"| {r['throughput_per_min']} | {r['first_s_mean']} | {r['p50_s']} | {r['p90_s']} "
            f"| {r['p99_s']} | {r['mb_per_inference']} | {r['server_peak_rss_mb']} "
            f"| {r['server_peak_pss_mb']} | {r['edge_cpu_s_per_inference']} "
            f"| {r['edge_setup_cpu_s_per_session']} | {r['camera_cpu_s_per_inference']} "
            f"| {r['cameras_per_core_at_5s']} |"
        )
    meta = {
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
        "count": args.count,
        "ot": args.ot or "default",
    }
    if args.json:
        args.json.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
