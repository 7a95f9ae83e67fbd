"""Soak: N cameras at a fixed rate against one edge for a long run; does memory grow?

The edge is a real `secfepas edge serve` process (demo model, one session slot
per camera) and each camera a real pipeline process (tests/testkit/camproc.py:
the bundled clip looped at its frame rate, MTCNN detection, the constant
schedule at ``--rate`` inferences a minute, over mutual TLS). Every
``--interval`` seconds the RSS of the edge's process tree (server, model host,
session workers; PSS too) and of each camera's is read from /proc.

After ``--warmup`` seconds, a process passes when the median of its last tenth
of samples is at most ``--limit`` percent above the median of its first tenth
after warm-up (medians, so one inference's buffers in flight do not decide).
Any process that exits fails the run. Writes JSON (every sample, per-process
verdicts, inferences per camera) and a PNG of the curves (matplotlib).

    python benchmarks/soak.py                                   # 30 min, 4 cameras
    python benchmarks/soak.py --duration 180 --warmup 60 --json s.json --png s.png

Exit status 0 when every process passed, 1 otherwise.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from testkit.edgeproc import Edge  # noqa: E402
from testkit.proctree import tree_memory  # noqa: E402
from testkit.wait import wait_until  # noqa: E402

CAMPROC = REPO / "tests" / "testkit" / "camproc.py"
MODEL = "demo-pain-cnn"


def growth(series: list[float]) -> dict[str, float]:
    """Baseline (median of the first tenth, at least 3 samples), final (the last
    tenth), peak and growth in percent of a post-warm-up RSS series (MB)."""
    if not series:
        raise ValueError("no sample after the warm-up: run longer or warm up less")
    window = max(3, len(series) // 10)
    baseline = statistics.median(series[:window])
    final = statistics.median(series[-window:])
    return {
        "baseline_mb": round(baseline, 1),
        "final_mb": round(final, 1),
        "peak_mb": round(max(series), 1),
        "growth_pct": round(100.0 * (final - baseline) / baseline, 2) if baseline else 0.0,
    }


def verdicts(
    samples: list[dict[str, Any]], names: list[str], warmup_s: float, limit_pct: float
) -> dict[str, dict[str, Any]]:
    """Per process (``edge`` and each camera), its growth after warm-up and whether it passed."""
    after = [s for s in samples if s["t"] >= warmup_s]
    out: dict[str, dict[str, Any]] = {}
    for name in ["edge", *names]:
        key = "edge_rss_mb" if name == "edge" else name
        series = [s[key] if name == "edge" else s["cameras_rss_mb"][name] for s in after]
        row: dict[str, Any] = growth(series)
        row["ok"] = row["growth_pct"] <= limit_pct
        out[name] = row
    pss = growth([s["edge_pss_mb"] for s in after])
    out["edge"]["pss"] = pss
    return out


def _journal(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def plot(report: dict[str, Any], path: Path) -> None:
    """RSS against time for the edge (RSS and PSS sums) and each camera."""
    try:
        import matplotlib
    except ImportError:
        raise SystemExit("soak: the PNG needs matplotlib: pip install -e '.[dev]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    samples, meta = report["samples"], report["meta"]
    minutes = [s["t"] / 60 for s in samples]
    fig, (edge_ax, cam_ax) = plt.subplots(2, 1, figsize=(9, 7), sharex=True)
    edge_ax.plot(minutes, [s["edge_rss_mb"] for s in samples], label="edge RSS (sum over tree)")
    edge_ax.plot(minutes, [s["edge_pss_mb"] for s in samples], label="edge PSS (sum over tree)")
    for name in report["cameras"]:
        cam_ax.plot(minutes, [s["cameras_rss_mb"][name] for s in samples], label=name)
    for ax, title in ((edge_ax, "edge"), (cam_ax, "cameras")):
        ax.axvline(meta["warmup_s"] / 60, color="grey", linestyle="--", label="end of warm-up")
        ax.set_ylabel("MB")
        ax.set_title(title)
        ax.legend(loc="lower right", fontsize="small")
        ax.grid(alpha=0.3)
    cam_ax.set_xlabel("minutes")
    verdict = "passed" if report["ok"] else "FAILED"
    span = meta["duration_s"]
    length = f"{span / 60:.0f} min" if span >= 120 else f"{span:.0f} s"
    fig.suptitle(
        f"soak: {meta['cameras']} camera(s) at {meta['rate_per_min']:g}/min for {length}, "
        f"growth limit {meta['limit_pct']:g}% ({verdict})"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def soak(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    from secfepas_sdk.certs import init_pki, issue_camera
    from secfepas_sdk.models.bundled import demo_model_dir

    pki = init_pki(tmp / "pki")
    names = [f"camera-{i}" for i in range(1, args.cameras + 1)]
    for name in names[1:]:
        issue_camera(pki.root, name)
    edge = Edge("edge", tmp, pki, demo_model_dir(tmp / "models"), max_sessions=args.cameras)
    cameras: dict[str, subprocess.Popen[bytes]] = {}
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    samples: list[dict[str, Any]] = []
    try:
        edge.start()
        for name in names:
            files = pki.camera(name)
            cameras[name] = subprocess.Popen(
                [sys.executable, str(CAMPROC), "--edge", f"127.0.0.1:{edge.port}",
                 "--ca", str(pki.ca_cert), "--cert", str(files.cert), "--key", str(files.key),
                 "--model", MODEL, "--period", str(60.0 / args.rate), "--frames", args.frames,
                 "--policy", "default", "--journal", str(tmp / f"{name}.jsonl")],
                stdout=subprocess.DEVNULL,
                stderr=(tmp / f"{name}.log").open("ab"),
                env=env,
            )  # fmt: skip

        def ready() -> bool:
            for name, proc in cameras.items():
                if proc.poll() is not None:
                    log = (tmp / f"{name}.log").read_text(errors="replace")
                    raise SystemExit(f"soak: {name} exited {proc.returncode}:\n{log}")
            return all(any("ready" in r for r in _journal(tmp / f"{n}.jsonl")) for n in names)

        wait_until(ready, 600, interval=0.5, what="every camera's session")
        start = time.monotonic()
        assert edge.proc is not None
        while (t := time.monotonic() - start) <= args.duration:
            died = [n for n, p in cameras.items() if p.poll() is not None]
            if edge.proc.poll() is not None:
                died.append("edge")
            if died:
                raise SystemExit(f"soak: {', '.join(died)} exited at {t:.0f} s")
            mem = tree_memory(edge.proc.pid)
            samples.append(
                {
                    "t": round(t, 2),
                    "edge_rss_mb": round(mem.rss_mb, 1),
                    "edge_pss_mb": round(mem.pss_mb, 1),
                    "cameras_rss_mb": {
                        n: round(tree_memory(p.pid).rss_mb, 1) for n, p in cameras.items()
                    },
                }
            )
            pause = start + len(samples) * args.interval - time.monotonic()
            time.sleep(max(0.0, pause))  # the sampling rate, not a synchronisation
    finally:
        for proc in cameras.values():
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
        for proc in cameras.values():
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        edge.cleanup()
    inferences = {n: sum("analysed" in r for r in _journal(tmp / f"{n}.jsonl")) for n in names}
    result = verdicts(samples, names, args.warmup, args.limit)
    return {
        "meta": {
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "interval_s": args.interval,
            "cameras": args.cameras,
            "rate_per_min": args.rate,
            "frames": args.frames,
            "model": MODEL,
            "limit_pct": args.limit,
            "cpus": os.cpu_count(),
            "python": sys.version.split()[0],
        },
        "cameras": names,
        "inferences": inferences,
        # Below --rate when inferences overran their slot (a loaded machine): missed slots.
        "achieved_per_min": {n: round(60.0 * k / args.duration, 1) for n, k in inferences.items()},
        "processes": result,
        "ok": all(row["ok"] for row in result.values()),
        "samples": samples,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=1800.0, help="seconds (default 1800)")
    parser.add_argument("--cameras", type=int, default=4, help="camera processes (default 4)")
    parser.add_argument(
        "--rate", type=float, default=12.0, help="inferences per camera per minute (default 12)"
    )
    parser.add_argument(
        "--warmup", type=float, help="seconds before memory counts (default: duration / 6)"
    )
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between samples")
    parser.add_argument("--limit", type=float, default=10.0, help="allowed growth, percent")
    parser.add_argument(
        "--frames",
        choices=("clip", "flat"),
        default="clip",
        help="'clip' (default): the sample clip with face detection; 'flat': uniform frames",
    )
    parser.add_argument("--json", type=Path, default=Path("soak.json"))
    parser.add_argument("--png", type=Path, default=Path("soak.png"))
    args = parser.parse_args(argv)
    if args.warmup is None:
        args.warmup = args.duration / 6
    if not (args.duration > 0 and args.cameras >= 1 and args.rate > 0 and args.interval > 0):
        parser.error("duration, cameras, rate and interval must be positive")
    if not 0 <= args.warmup < args.duration:
        parser.error("--warmup must be within [0, duration)")
    with tempfile.TemporaryDirectory(prefix="secfepas-soak-") as tmp:
        report = soak(args, Path(tmp))
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    plot(report, args.png)
    for name, row in report["processes"].items():
        print(
            f"{name:10s} baseline {row['baseline_mb']:8.1f} MB  final {row['final_mb']:8.1f} MB  "
            f"peak {row['peak_mb']:8.1f} MB  growth {row['growth_pct']:+6.2f}%  "
            f"{'ok' if row['ok'] else 'GREW'}"
        )
    print(
        f"inferences: {report['inferences']} (per minute: {report['achieved_per_min']}, "
        f"asked {args.rate:g}); JSON {args.json}, PNG {args.png}"
    )
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
