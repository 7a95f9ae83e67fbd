"""Camera-side benchmark: selection, face detection, preprocessing, peak RSS.

    flock /tmp/secfepas-bench.lock python benchmarks/camera.py [--json PATH] [--repeats N]

All inputs are real frames: the bundled demo clip (320x240) and its 2x upscale
to 640x480. The detector runs with one onnxruntime thread, as on the camera.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import onnxruntime

from secfepas_sdk.camera.detection import DetectorConfig, FaceDetector
from secfepas_sdk.camera.frames import Frame
from secfepas_sdk.camera.preprocess import preprocess_face
from secfepas_sdk.camera.selection import PeriodicSelector, SelectorChain, default_chain
from secfepas_sdk.camera.sources import open_source
from secfepas_sdk.models.bundled import sample_video_path

TARGETS = {
    "selection_fps_640x480": (">=", 300.0),
    "detect_ms_320x240": ("<=", 15.0),
    "detect_ms_640x480": ("<=", 40.0),
    "select_detect_preprocess_ms_640x480": ("<=", 50.0),
}


def _ms(fn: Callable[[], object], repeats: int) -> dict[str, float]:
    """Wall-clock median/p90/min and the median CPU time of this thread, in ms.

    The CPU time shows the intrinsic cost when other jobs share the 2 cores.
    """
    fn()  # warm-up
    times, cpu = [], []
    for _ in range(repeats):
        c = time.thread_time()
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000.0)
        cpu.append((time.thread_time() - c) * 1000.0)
    times.sort()
    return {
        "median": statistics.median(times),
        "p90": times[min(len(times) - 1, int(0.9 * len(times)))],
        "min": times[0],
        "cpu": statistics.median(cpu),
    }


def _load_clip(scale: int) -> list[Frame]:
    frames = []
    with open_source(sample_video_path()) as src:
        for f in src:
            px = f.pixels
            if scale != 1:
                px = cv2.resize(px, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR)
            frames.append(Frame(pixels=px, timestamp=f.timestamp, index=f.index, source_id="bench"))
    return frames


def _selection_fps(frames: list[Frame], period_s: float, rounds: int) -> float:
    best = 0.0
    for _ in range(rounds):
        chain = (
            default_chain(period_s)
            if period_s > 0
            else SelectorChain([PeriodicSelector(0.0), default_chain().steps[1]])
        )
        t = time.perf_counter()
        for f in frames:
            chain.select(f)
        best = max(best, len(frames) / (time.perf_counter() - t))
    return best


def _write_clip(frames: list[Frame], path: Path) -> Path:
    h, w = frames[0].pixels.shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), 10, (w, h))
    for f in frames:
        writer.write(f.pixels)
    writer.release()
    return path


def _decode_select_fps(path: Path) -> float:
    chain = default_chain()
    t = time.perf_counter()
    with open_source(path) as src:
        n = sum(1 for f in src if chain.select(f) or True)
    return n / (time.perf_counter() - t)


_CHILD = """
import sys
from secfepas_sdk.cli.main import main
code = main(["camera", "inspect", sys.argv[1]])
hwm = [line for line in open("/proc/self/status") if line.startswith("VmHWM:")]
print(hwm[0].split()[1], file=sys.stderr)
sys.exit(code)
"""


def _pipeline_peak_rss_mb(path: Path) -> float:
    """Peak RSS of `secfepas camera inspect` streaming the 640x480 clip, in a child.

    Read from the child's own VmHWM: ru_maxrss would include this process's
    pages, inherited across fork and exec.
    """
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD, str(path)],
        check=True,
        capture_output=True,
        text=True,
        timeout=600,
    )
    return int(proc.stderr.strip().splitlines()[-1]) / 1024.0


def run(repeats: int, config: DetectorConfig) -> dict[str, Any]:
    small = _load_clip(1)
    large = _load_clip(2)
    detector = FaceDetector(config)
    res: dict[str, Any] = {
        "machine": platform.machine(),
        "python": platform.python_version(),
        "onnxruntime": onnxruntime.__version__,
        "opencv": cv2.__version__,
        "detector_config": {
            "min_face_size": config.min_face_size,
            "scale_factor": config.scale_factor,
            "thresholds": list(config.thresholds),
            "intra_op_threads": config.intra_op_threads,
        },
    }
    res["selection_fps_640x480"] = _selection_fps(large, 5.0, 3)
    res["selection_fps_640x480_every_frame_compared"] = _selection_fps(large, 0.0, 3)
    with tempfile.TemporaryDirectory() as tmp:
        clip = _write_clip(large, Path(tmp) / "clip640.mp4")
        res["decode_and_select_fps_640x480_mp4v"] = _decode_select_fps(clip)
        res["pipeline_peak_rss_mb"] = _pipeline_peak_rss_mb(clip)
    face_frames = {"320x240": small[0].pixels, "640x480": large[0].pixels}
    empty_frames = {"320x240": small[250].pixels, "640x480": large[250].pixels}
    for size in ("320x240", "640x480"):
        face_px, empty_px = face_frames[size], empty_frames[size]
        assert detector.best(face_px) is not None and detector.best(empty_px) is None
        stats = _ms(lambda px=face_px: detector.detect(px), repeats)
        res[f"detect_ms_{size}"] = stats["median"]
        res[f"detect_ms_{size}_p90"] = stats["p90"]
        res[f"detect_ms_{size}_min"] = stats["min"]
        res[f"detect_ms_{size}_cpu"] = stats["cpu"]
        res[f"detect_ms_{size}_no_face"] = _ms(lambda px=empty_px: detector.detect(px), repeats)[
            "median"
        ]
    face = detector.best(large[0].pixels)
    assert face is not None
    res["preprocess_ms_640x480"] = _ms(
        lambda: preprocess_face(large[0].pixels, face.box), repeats * 5
    )["median"]

    # One selected frame, end to end: the chain's decision, detection, crop+tensor.
    selected = [large[i] for i in (0, 100, 200, 300)]
    per_frame = []
    for _ in range(max(1, repeats // len(selected))):
        for f in selected:
            chain = SelectorChain([PeriodicSelector(0.0), default_chain().steps[1]])
            t = time.perf_counter()
            assert chain.select(f)
            best = detector.best(f.pixels)
            if best is not None:
                preprocess_face(f.pixels, best.box)
            per_frame.append((time.perf_counter() - t) * 1000.0)
    res["select_detect_preprocess_ms_640x480"] = statistics.median(per_frame)
    # This process holds 360 decoded 640x480 frames; the pipeline's own peak is above.
    res["benchmark_peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    res["load_average_1min"] = os.getloadavg()[0]
    res["targets_met"] = {
        k: (res[k] >= v if op == ">=" else res[k] <= v) for k, (op, v) in TARGETS.items()
    }
    return res


def _table(res: dict[str, Any]) -> str:
    rows = [
        ("selection, 640x480, period 5 s (frames/s)", "selection_fps_640x480", ">= 300"),
        (
            "selection, 640x480, every frame compared (frames/s)",
            "selection_fps_640x480_every_frame_compared",
            "",
        ),
        ("decode mp4v + selection, 640x480 (frames/s)", "decode_and_select_fps_640x480_mp4v", ""),
        ("detector 320x240, 1 thread, face (ms, median)", "detect_ms_320x240", "<= 15"),
        ("detector 320x240, face (ms, min)", "detect_ms_320x240_min", ""),
        ("detector 320x240, face (ms, CPU time)", "detect_ms_320x240_cpu", ""),
        ("detector 320x240, no face (ms)", "detect_ms_320x240_no_face", ""),
        ("detector 640x480, 1 thread, face (ms, median)", "detect_ms_640x480", "<= 40"),
        ("detector 640x480, face (ms, min)", "detect_ms_640x480_min", ""),
        ("detector 640x480, face (ms, CPU time)", "detect_ms_640x480_cpu", ""),
        ("detector 640x480, no face (ms)", "detect_ms_640x480_no_face", ""),
        ("preprocess crop+224x224 tensor (ms)", "preprocess_ms_640x480", ""),
        (
            "select + detect + preprocess, 640x480 (ms)",
            "select_detect_preprocess_ms_640x480",
            "<= 50",
        ),
        ("1-min load average during the run", "load_average_1min", ""),
        ("peak RSS, `camera inspect` on the 640x480 clip (MB)", "pipeline_peak_rss_mb", ""),
    ]
    width = max(len(r[0]) for r in rows)
    lines = [f"{'measure':<{width}}  {'value':>10}  target", "-" * (width + 22)]
    for label, key, target in rows:
        lines.append(f"{label:<{width}}  {res[key]:>10.2f}  {target}")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, default=None, help="write results here")
    parser.add_argument("--repeats", type=int, default=40)
    parser.add_argument("--min-face-size", type=int, default=DetectorConfig().min_face_size)
    parser.add_argument("--scale-factor", type=float, default=DetectorConfig().scale_factor)
    args = parser.parse_args()
    config = DetectorConfig(min_face_size=args.min_face_size, scale_factor=args.scale_factor)
    res = run(args.repeats, config)
    print(_table(res))
    print("targets met:", ", ".join(f"{k}={v}" for k, v in res["targets_met"].items()))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(res, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
