"""A camera process for the fault tests and the soak benchmark.

The real pipeline: a capture thread pushes frames at a fixed frame rate into a
PushSource -> the constant schedule (one secure inference per ``--period`` over
mutual TLS) -> the alert policy -> the sqlite outbox -> the sinks. Only the
capture is simulated, and no frame is written anywhere.

    python tests/testkit/camproc.py --edge HOST:PORT --ca CA --cert CERT --key KEY
        --model ID --period S [--frames flat|clip] [--policy often|default]
        [--sink URI ...] [--outbox PATH] [--journal PATH]

``--frames flat`` pushes uniform frames, dark (the demo model answers
"moderate") after an analysed frame below level 2, bright ("little") after one
at 2 or more; with ``--policy often`` (threshold 2, no cool-down, resolved after
one frame) every analysed frame then raises an alert (pain, resolved, pain,
...), however the slots fall on a loaded machine. ``--frames clip`` loops the bundled
sample clip with MTCNN detection and the default selection chain, as a bedside
camera runs.

The journal (JSON lines, appended, one ``write`` each so that a SIGKILL never
tears one) is what the tests check the sinks against: ``{"intent": ID}`` just
before an alert goes into the outbox, ``{"stored": ID, "t": T}`` once it is
durably there, ``{"analysed": N}`` after each analysed frame, ``{"ready": ...}``
when the session is up. SIGTERM stops the pipeline; the service then gets
``--close-timeout`` seconds to deliver what is pending.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from secfepas_sdk.alerts import AlertService, PolicyConfig
from secfepas_sdk.alerts.assessment import PainAssessment
from secfepas_sdk.camera.client import SecureInferenceClient
from secfepas_sdk.camera.pipeline import CameraPipeline, PipelineConfig
from secfepas_sdk.camera.selection import default_chain
from secfepas_sdk.camera.sources import PushSource
from secfepas_sdk.errors import SourceError
from secfepas_sdk.models.bundled import sample_video_path
from secfepas_sdk.protocol.transport import TlsFiles

OFTEN = PolicyConfig(threshold=2, consecutive=1, resolve_after=1, cooldown_s=0.0)
FLAT_FPS = 4.0  # frames per second pushed in flat mode (several per slot)


class Journal:
    """Appends one JSON object per line with a single write(2)."""

    def __init__(self, path: Path | None) -> None:
        self._fd = (
            None if path is None else os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        )

    def write(self, **record: Any) -> None:
        if self._fd is not None:
            os.write(self._fd, (json.dumps(record) + "\n").encode())


def flat_frames(stop: threading.Event, dark: threading.Event, source: PushSource) -> None:
    """A dark frame while ``dark`` is set, else a bright one, ``FLAT_FPS`` a second."""
    frames = (np.full((64, 64, 3), 255, np.uint8), np.zeros((64, 64, 3), np.uint8))
    start = time.monotonic()
    tick = 0
    while not stop.is_set():
        with contextlib.suppress(SourceError):  # the pipeline ended the stream
            source.push(frames[dark.is_set()])
        tick += 1
        stop.wait(max(0.0, start + tick / FLAT_FPS - time.monotonic()))  # the capture rate


def clip_frames(stop: threading.Event, source: PushSource) -> None:
    """The bundled clip at its own frame rate, from the start again at its end."""
    import cv2

    start = time.monotonic()
    tick = 0
    while not stop.is_set():
        capture = cv2.VideoCapture(str(sample_video_path()))
        fps = capture.get(cv2.CAP_PROP_FPS) or 10.0
        try:
            while not stop.is_set():
                ok, pixels = capture.read()
                if not ok:
                    break
                with contextlib.suppress(SourceError):  # the pipeline ended the stream
                    source.push(pixels)
                tick += 1
                stop.wait(max(0.0, start + tick / fps - time.monotonic()))  # the capture rate
        finally:
            capture.release()


async def run(args: argparse.Namespace) -> int:
    journal = Journal(args.journal)
    tls = TlsFiles(ca=args.ca, cert=args.cert, key=args.key)
    client = SecureInferenceClient(args.edge, tls, args.model)
    alerts: AlertService | None = None
    if args.sink:
        policy = OFTEN if args.policy == "often" else PolicyConfig()
        alerts = AlertService.from_uris(
            args.sink, outbox=args.outbox, camera_id=client.camera_id, policy=policy
        )
    analysed = 0
    flip = threading.Event()  # flat mode: the next frames are dark (set) or bright
    flip.set()

    def on_assessment(a: PainAssessment) -> None:
        nonlocal analysed
        analysed += 1
        journal.write(analysed=analysed)
        if a.level < OFTEN.threshold:
            flip.set()
        else:
            flip.clear()
        if alerts is None:
            return
        alert = alerts.policy.evaluate(a)
        if alert is not None:
            journal.write(intent=str(alert.alert_id))
            alerts.publish(alert)
            journal.write(stored=str(alert.alert_id), t=time.time())

    source = PushSource(maxsize=4, source_id=client.camera_id)
    stop = threading.Event()
    detector = None
    if args.frames == "clip":
        from secfepas_sdk.camera.detection import FaceDetector

        detector = FaceDetector()
        feed = threading.Thread(target=clip_frames, args=(stop, source), daemon=True)
    else:
        feed = threading.Thread(target=flat_frames, args=(stop, flip, source), daemon=True)
    pipeline = CameraPipeline(
        source,
        client,
        selector=default_chain(period_s=args.period) if detector is not None else None,
        detector=detector,
        on_assessment=on_assessment,
        config=PipelineConfig(schedule="constant", schedule_period_s=args.period),
    )
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, pipeline.stop)
    await client.connect()
    journal.write(ready=client.camera_id, pid=os.getpid())
    feed.start()
    try:
        async for _ in pipeline.run():
            pass
    finally:
        stop.set()
        source.end()
        await client.close()
        if alerts is not None:
            alerts.close(args.close_timeout)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--edge", required=True)
    parser.add_argument("--ca", required=True, type=Path)
    parser.add_argument("--cert", required=True, type=Path)
    parser.add_argument("--key", required=True, type=Path)
    parser.add_argument("--model", required=True)
    parser.add_argument("--period", type=float, default=2.0, help="seconds per inference slot")
    parser.add_argument("--frames", choices=("flat", "clip"), default="flat")
    parser.add_argument("--policy", choices=("often", "default"), default="often")
    parser.add_argument("--sink", action="append", default=[])
    parser.add_argument("--outbox", type=Path)
    parser.add_argument("--journal", type=Path)
    parser.add_argument("--close-timeout", type=float, default=5.0)
    args = parser.parse_args()
    if args.sink and args.outbox is None:
        parser.error("--sink needs --outbox")
    return asyncio.run(run(args))


if __name__ == "__main__":
    raise SystemExit(main())
