"""`secfepas demo`: an edge and a camera on loopback, end to end, in one command.

Throwaway certificates in a temporary directory, the bundled demo model and
the bundled sample video; prints each analysed frame, then a summary.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import threading
from typing import Any


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    demo = subparsers.add_parser(
        "demo",
        help="run an edge and a camera on loopback over the bundled sample video",
        description="Start an edge server and a camera on 127.0.0.1 with throwaway "
        "certificates, and analyse the bundled clip with the bundled demo model "
        "(seeded random weights: the levels show the mechanics, not a diagnosis).",
    )
    demo.add_argument("--json", action="store_true", help="machine-readable JSON lines")
    demo.add_argument(
        "--max-frames",
        type=int,
        help="stop after this many analysed frames (default: the whole clip)",
    )
    demo.add_argument("--period", type=float, default=1.0, help="seconds between selected frames")
    demo.add_argument(
        "--pace",
        choices=("realtime", "source"),
        default="realtime",
        help="'realtime' plays the clip like a live camera; 'source' reads it "
        "as fast as possible (most frames are then dropped by the bounded queue)",
    )
    demo.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from secfepas_sdk.cli.progress import Progress

    with Progress("demo", enabled=not args.json) as progress:
        args.progress = progress
        return asyncio.run(_demo(args))


def _emit(args: argparse.Namespace, record: dict[str, Any], text: str) -> None:
    with args.progress.paused():
        print(json.dumps(record) if args.json else text, flush=True)


def _stop_on_ctrl_c(pipeline: Any) -> threading.Event:
    """On Ctrl-C, stop capturing, finish the frame in flight and close the session.

    The edge's workers ignore SIGINT (a terminal sends it to the whole process
    group), so this process alone stops, gracefully. A second Ctrl-C interrupts at once.
    """
    loop = asyncio.get_running_loop()
    interrupted = threading.Event()

    def on_interrupt() -> None:
        interrupted.set()
        pipeline.stop()
        loop.remove_signal_handler(signal.SIGINT)  # back to KeyboardInterrupt

    loop.add_signal_handler(signal.SIGINT, on_interrupt)
    return interrupted


async def _demo(args: argparse.Namespace) -> int:
    import tempfile
    import time
    from pathlib import Path

    from secfepas_sdk._extras import require_all

    # The demo runs both roles: name every missing module and the one extra at once.
    require_all(("pydantic_settings", "cv2", "onnxruntime", "tenseal"), "all")
    from secfepas_sdk.alerts.assessment import PAIN_LEVELS
    from secfepas_sdk.camera.client import SecureInferenceClient
    from secfepas_sdk.camera.detection import FaceDetector
    from secfepas_sdk.camera.pipeline import CameraPipeline, PipelineConfig
    from secfepas_sdk.camera.selection import default_chain
    from secfepas_sdk.camera.sources import open_source
    from secfepas_sdk.certs import init_pki
    from secfepas_sdk.cli.camera_run import assessment_line, clock
    from secfepas_sdk.edge.server import Server
    from secfepas_sdk.edge.settings import load_settings
    from secfepas_sdk.models.bundled import demo_model_dir, sample_video_path
    from secfepas_sdk.protocol.transport import TlsFiles

    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="secfepas-demo-") as tmp:
        root = Path(tmp)
        pki = init_pki(root / "pki")
        settings = load_settings(
            None,
            model_dir=demo_model_dir(root / "models"),
            ca=pki.ca_cert,
            cert=pki.edge_cert,
            key=pki.edge_key,
            host="127.0.0.1",
            port=0,
            max_sessions=1,
            metrics_enabled=False,  # never clash with an edge already on this host
        )
        server = Server(settings)
        args.progress.update("starting the edge (model check, worker processes)")
        await server.start()
        host, port = server.address
        cam = pki.camera("camera-1")
        _emit(
            args,
            {
                "event": "start",
                "edge": f"{host}:{port}",
                "camera": "camera-1",
                "video": sample_video_path().name,
            },
            f"edge listening on {host}:{port} (TLS 1.3, mutual auth, throwaway CA in {tmp})\n"
            f"camera 'camera-1' analysing {sample_video_path().name}; "
            "the first frame includes the one-off session setup",
        )
        client = SecureInferenceClient(
            (host, port), TlsFiles(ca=pki.ca_cert, cert=cam.cert, key=cam.key), "demo-pain-cnn"
        )
        pipeline = CameraPipeline(
            open_source(sample_video_path()),
            client,
            selector=default_chain(period_s=args.period),
            detector=FaceDetector(),
            config=PipelineConfig(pace=args.pace, max_frames=args.max_frames),
        )
        results = []
        interrupted = _stop_on_ctrl_c(pipeline)
        args.progress.update("session setup (HE keys, base OTs), then the first frame")
        try:
            async for a in pipeline.run():
                results.append(a)
                s = pipeline.stats
                _emit(
                    args,
                    {"event": "frame", **assessment_line(a)},
                    f"[{len(results):3d}] frame {a.frame_index:4d} at {clock(a.frame_time)}  "
                    f"pain={a.label:<8s} p={max(a.probabilities):.2f}  {a.seconds:5.2f} s  "
                    f"{a.total_bytes / 1e6:6.1f} MB   (captured {s.captured}, "
                    f"dropped {s.dropped}, no face {s.no_face})",
                )
                args.progress.update(f"{len(results)} frame(s) analysed, waiting for the next one")
        finally:
            await client.close()
            await server.stop(5.0)
            asyncio.get_running_loop().remove_signal_handler(signal.SIGINT)
    stats = pipeline.stats
    if not results:
        if interrupted.is_set():
            print("secfepas: interrupted before any frame was analysed", file=sys.stderr)
            return 130
        print("secfepas demo: no frame was analysed", file=sys.stderr)
        return 1
    latencies = sorted(a.seconds for a in results)
    steady = latencies if len(results) == 1 else sorted(a.seconds for a in results[1:])
    summary = {
        "event": "summary",
        "analysed": len(results),
        **{k: v for k, v in stats.as_dict().items() if k != "analysed"},
        "levels": {name: sum(a.level == i for a in results) for i, name in enumerate(PAIN_LEVELS)},
        "first_seconds": round(results[0].seconds, 3),
        "median_seconds": round(steady[len(steady) // 2], 3),
        "mean_megabytes": round(sum(a.total_bytes for a in results) / len(results) / 1e6, 2),
        "wall_seconds": round(time.monotonic() - started, 1),
        "interrupted": interrupted.is_set(),
    }
    _emit(
        args,
        summary,
        ("\ninterrupted (Ctrl-C): the session was closed" if interrupted.is_set() else "")
        + f"\nsummary: {summary['analysed']} frame(s) analysed securely of {stats.captured} "
        f"captured ({stats.selected} selected, {stats.dropped} dropped by the bounded queue, "
        f"{stats.no_face} without a face, {stats.errors} errors)\n"
        f"  levels: {summary['levels']}\n"
        f"  per frame: first {summary['first_seconds']} s (with setup), median "
        f"{summary['median_seconds']} s, {summary['mean_megabytes']} MB on the wire\n"
        f"  wall time {summary['wall_seconds']} s; the throwaway certificates were deleted",
    )
    return 0
