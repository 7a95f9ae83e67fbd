"""`secfepas camera`: detect faces in an image, inspect a source's selection.

Heavy modules (OpenCV, onnxruntime) are imported inside the handlers so that
`secfepas --help` works without the camera extra.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from secfepas_sdk.cli import camera_run


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add `camera` with `detect`, `inspect` and (from camera_run) `run`."""
    camera = subparsers.add_parser(
        "camera", help="camera-side tools: face detection, frame selection, secure client"
    )
    camera.set_defaults(handler=lambda _args: _help(camera))
    sub = camera.add_subparsers(dest="camera_command", metavar="SUBCOMMAND")

    detect = sub.add_parser("detect", help="detect faces in one image (MTCNN, ONNX)")
    detect.add_argument("image", type=Path, help="image file (any format OpenCV reads)")
    detect.add_argument("--json", action="store_true", help="print JSON")
    _detector_args(detect)
    detect.set_defaults(handler=_detect)

    inspect = sub.add_parser(
        "inspect", help="run a source through selection and detection, report each selected frame"
    )
    inspect.add_argument(
        "source", help="video file, image folder, device (0, /dev/video0) or stream URL"
    )
    inspect.add_argument(
        "--period",
        type=float,
        default=None,
        help="seconds between candidate frames (periodic selection; default: 5.0)",
    )
    inspect.add_argument(
        "--threshold",
        type=float,
        default=None,
        help="redundancy threshold: a candidate whose mean absolute difference from the last "
        "selected frame is below this many grey levels is dropped (default: 0.8)",
    )
    inspect.add_argument("--json", action="store_true", help="print JSON lines")
    inspect.add_argument("--fps", type=float, default=1.0, help="frame rate of an image folder")
    inspect.add_argument(
        "--max-frames",
        type=int,
        default=None,
        help="stop after N frames (default: the whole source)",
    )
    _detector_args(inspect)
    inspect.set_defaults(handler=_inspect)

    camera_run.register(sub)


def _help(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def _detector_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--min-face-size",
        type=int,
        default=None,
        help="smallest face to detect, in pixels (default: 40)",
    )
    parser.add_argument("--threads", type=int, default=1, help="onnxruntime threads")


def _detector(args: argparse.Namespace) -> Any:
    from secfepas_sdk.camera.detection import DetectorConfig, FaceDetector
    from secfepas_sdk.errors import ConfigError

    kwargs: dict[str, Any] = {"intra_op_threads": args.threads}
    if args.min_face_size is not None:
        kwargs["min_face_size"] = args.min_face_size
    try:
        config = DetectorConfig(**kwargs)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    return FaceDetector(config)


def _detect(args: argparse.Namespace) -> int:
    from secfepas_sdk._extras import require
    from secfepas_sdk.camera.frames import as_bgr
    from secfepas_sdk.errors import SourceError

    cv2: Any = require("cv2", "camera")
    name = str(args.image)
    if not args.image.is_file():
        raise SourceError(f"{name}: no such file")
    pixels = cv2.imread(name, cv2.IMREAD_UNCHANGED)
    if pixels is None:
        raise SourceError(f"{name}: not an image OpenCV can read")
    faces = _detector(args).detect(as_bgr(pixels, source_id=name))
    if args.json:
        print(json.dumps({"faces": [f.to_json() for f in faces]}))
    else:
        print(f"{name}: {len(faces)} face(s)")
        for f in faces:
            x1, y1, x2, y2 = f.box
            print(f"  box ({x1:.0f}, {y1:.0f}) - ({x2:.0f}, {y2:.0f})  score {f.score:.3f}")
    return 0


def _inspect(args: argparse.Namespace) -> int:
    from secfepas_sdk._extras import require
    from secfepas_sdk.camera.selection import (
        DEFAULT_PERIOD_S,
        DEFAULT_REDUNDANCY_THRESHOLD,
        default_chain,
    )
    from secfepas_sdk.camera.sources import open_source
    from secfepas_sdk.errors import ConfigError, SourceError

    require("cv2", "camera")  # a clear error naming the extra before any source opens
    period = DEFAULT_PERIOD_S if args.period is None else args.period
    threshold = DEFAULT_REDUNDANCY_THRESHOLD if args.threshold is None else args.threshold
    try:
        chain = default_chain(period, threshold)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    if args.max_frames is not None and args.max_frames < 1:
        raise ConfigError("--max-frames must be >= 1")
    detector = _detector(args)
    no_face = 0
    with open_source(args.source, fps=args.fps) as source:
        for frame in source:
            if chain.select(frame):
                faces = detector.detect(frame.pixels)
                if not faces:
                    no_face += 1
                _report_frame(args.json, frame.index, frame.timestamp, faces)
            if args.max_frames is not None and chain.stats.seen >= args.max_frames:
                break
    stats = chain.stats
    if stats.seen == 0:  # OpenCV opens some undecodable files and then yields nothing
        raise SourceError(
            f"{args.source}: no frame could be read (not a video, image folder or "
            "device that OpenCV can decode)"
        )
    summary = {
        "frames": stats.seen,
        "selected": stats.selected,
        "dropped_periodic": stats.dropped_by("periodic"),
        "dropped_redundant": stats.dropped_by("redundant"),
        "no_face": no_face,
    }
    if args.json:
        print(json.dumps({"summary": summary}))
    else:
        print("summary: " + ", ".join(f"{k} {v}" for k, v in summary.items()))
    return 0


def _report_frame(as_json: bool, index: int, t: float, faces: list[Any]) -> None:
    if as_json:
        line = {"index": index, "t": round(t, 4), "faces": [f.to_json() for f in faces]}
        print(json.dumps(line))
    else:
        best = f"best score {faces[0].score:.3f}" if faces else "no face"
        print(f"frame {index} at {t:.2f} s: {len(faces)} face(s), {best}")
    sys.stdout.flush()
