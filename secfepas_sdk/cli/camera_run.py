"""`secfepas camera run`: analyse a source through secure inference with one edge.

Prints one line per analysed frame; with --json exactly
``{"index", "t", "level", "probabilities", "seconds", "bytes"}``, where ``t`` is
the frame's capture time in UTC POSIX seconds. At the end, one summary line on
stderr (with --json: a last ``{"summary": {...}}`` line on stdout); exit 1 when
any inference failed (e.g. the edge went away), so a supervisor notices.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def register(camera_subparsers: argparse._SubParsersAction[Any]) -> None:
    run = camera_subparsers.add_parser(
        "run", help="analyse a video source with secure inference against an edge"
    )
    run.add_argument("--edge", required=True, metavar="HOST:PORT", help="edge server address")
    run.add_argument("--ca", required=True, type=Path, help="site CA (pins the edge)")
    run.add_argument("--cert", required=True, type=Path, help="this camera's certificate")
    run.add_argument("--key", required=True, type=Path, help="this camera's private key")
    run.add_argument("--model", required=True, metavar="ID", help="model id served by the edge")
    run.add_argument(
        "--source", required=True, help="video file, image folder, /dev/videoN or rtsp:// URL"
    )
    run.add_argument(
        "--sink",
        action="append",
        default=[],
        metavar="URI",
        help="alert sink (console:, mqtts://..., fhir+https://...; repeatable; default: none)",
    )
    run.add_argument(
        "--outbox",
        type=Path,
        metavar="PATH",
        help="alert outbox (sqlite; used with --sink; default: "
        "$XDG_STATE_HOME/secfepas/outbox.sqlite, else ~/.local/state/secfepas/outbox.sqlite)",
    )
    run.add_argument("--json", action="store_true", help="one JSON object per analysed frame")
    run.add_argument("--server-name", help="edge name to verify (default: the host)")
    run.add_argument(
        "--period",
        type=float,
        default=5.0,
        help="seconds between selected frames, and between inferences (default: 5)",
    )
    run.add_argument(
        "--schedule",
        choices=("constant", "on-change"),
        default="constant",
        help="'constant' (default): one inference per period, on a dummy when no new face "
        "is there, so the edge learns nothing from timing; 'on-change' analyses each new "
        "face at once and shows the edge when someone is there and moves",
    )
    run.add_argument(
        "--schedule-period",
        type=float,
        metavar="SECONDS",
        help="seconds between inference slots (default: --period)",
    )
    run.add_argument(
        "--max-frames",
        type=int,
        help="stop after this many analysed frames (default: the whole source)",
    )
    run.add_argument(
        "--pace",
        choices=("source", "realtime"),
        default="realtime",
        help="'realtime' (default) plays files at their frame rate like a live camera (a "
        "no-op for live sources); 'source' reads a file as fast as possible, so that the "
        "constant schedule sees only the newest face of each period",
    )
    run.add_argument(
        "--model-package",
        type=Path,
        metavar="DIR",
        help="this model's public package: refuse an edge whose plan or manifest differs "
        "(default: no pinning)",
    )
    run.add_argument(
        "--ot",
        metavar="EXT[,EXT]",
        help="OT extensions to propose to the edge, most wanted first: ferret, softspoken "
        "(default: ferret,softspoken; ferret sends about half the bytes)",
    )
    run.add_argument("--no-detect", action="store_true", help="the source already gives face crops")
    run.set_defaults(handler=_run)


def ot_list(value: str | None) -> tuple[str, ...] | None:
    """A comma-separated --ot value (checked by whoever takes it), or None for the default."""
    if value is None:
        return None
    return tuple(part.strip() for part in value.split(","))


def assessment_line(a: Any) -> dict[str, Any]:
    """The JSON contract of one analysed frame."""
    return {
        "index": a.frame_index,
        "t": round(a.frame_time, 3),
        "level": a.level,
        "probabilities": [round(p, 6) for p in a.probabilities],
        "seconds": round(a.seconds, 3),
        "bytes": a.total_bytes,
    }


def clock(posix: float) -> str:
    """A capture time for humans: UTC time of day (the JSON keeps POSIX seconds)."""
    from datetime import UTC, datetime

    return datetime.fromtimestamp(posix, UTC).strftime("%H:%M:%S.%f")[:-4] + "Z"


def default_outbox() -> Path:
    """Where alerts wait for their sinks unless --outbox says otherwise (XDG state dir)."""
    import os

    state = os.environ.get("XDG_STATE_HOME", "")
    base = Path(state) if os.path.isabs(state) else Path.home() / ".local" / "state"
    return base / "secfepas" / "outbox.sqlite"


def _outbox_path(given: Path | None) -> Path:
    from secfepas_sdk.errors import ConfigError

    path = given if given is not None else default_outbox()
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create the outbox folder {path.parent}: {exc}") from exc
    return path


def summary_line(stats: Any, alerts: int) -> dict[str, int]:
    """The run's counters: frames selected, analysed, dropped; inferences failed; alerts."""
    return {
        "selected": stats.selected,
        "analysed": stats.analysed,
        "dropped": stats.dropped,
        "failed": stats.errors,
        "alerts": alerts,
    }


def _run(args: argparse.Namespace) -> int:
    import asyncio

    return asyncio.run(_main(args))


async def _main(args: argparse.Namespace) -> int:
    import contextlib

    from secfepas_sdk.camera.client import SecureInferenceClient
    from secfepas_sdk.camera.pipeline import CameraPipeline, PipelineConfig
    from secfepas_sdk.camera.selection import default_chain
    from secfepas_sdk.camera.sources import open_source
    from secfepas_sdk.protocol.transport import TlsFiles

    tls = TlsFiles(ca=args.ca, cert=args.cert, key=args.key)
    client = SecureInferenceClient(
        args.edge,
        tls,
        args.model,
        server_name=args.server_name,
        model_package=args.model_package,
        ot_extensions=ot_list(args.ot),
    )
    detector = None
    if not args.no_detect:
        from secfepas_sdk.camera.detection import FaceDetector

        detector = FaceDetector()
    alerts: Any = None
    if args.sink:
        from secfepas_sdk.alerts.service import AlertService

        outbox = _outbox_path(args.outbox)
        alerts = AlertService.from_uris(args.sink, outbox=outbox, camera_id=client.camera_id)
    raised = 0

    def on_assessment(a: Any) -> None:
        nonlocal raised
        if alerts is not None and alerts.submit(a) is not None:
            raised += 1

    pipeline = CameraPipeline(
        open_source(args.source),
        client,
        selector=default_chain(period_s=args.period),
        detector=detector,
        on_assessment=on_assessment,
        config=PipelineConfig(
            pace=args.pace,
            max_frames=args.max_frames,
            schedule=args.schedule,
            schedule_period_s=args.schedule_period,
        ),
    )
    try:
        async for a in pipeline.run():
            if args.json:
                print(json.dumps(assessment_line(a)), flush=True)
            else:
                print(
                    f"frame {a.frame_index:5d}  at {clock(a.frame_time)}  pain={a.label:<8s} "
                    f"p={max(a.probabilities):.2f}  {a.seconds:6.2f} s  "
                    f"{a.total_bytes / 1e6:7.1f} MB",
                    flush=True,
                )
    finally:
        await client.close()
        if alerts is not None:
            with contextlib.suppress(Exception):
                alerts.close()
    summary = summary_line(pipeline.stats, raised)
    if args.json:
        print(json.dumps({"summary": summary}), flush=True)
    else:
        print(
            "secfepas camera run: " + ", ".join(f"{k} {v}" for k, v in summary.items()),
            file=sys.stderr,
            flush=True,
        )
    if summary["failed"]:
        from secfepas_sdk.errors import SecfepasError

        raise SecfepasError(
            f"{summary['failed']} inference(s) failed (the edge went away or refused; "
            "see the warnings above)"
        )
    return 0
