"""The camera pipeline: source -> selection -> [bounded queue] -> detection ->
preprocessing -> secure inference -> assessments (and the alert callback).

Capture and selection run in their own thread and never wait for inference:
between them and the inference side sits a bounded queue that drops the
OLDEST frame when full (the newest picture of a patient matters most) and
counts every drop.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict, dataclass, replace
from typing import Literal, Protocol

import numpy as np
from numpy.typing import NDArray

from secfepas_sdk.alerts.assessment import PainAssessment
from secfepas_sdk.camera.client import FATAL_CODES, SecureInferenceClient
from secfepas_sdk.camera.detection import Face
from secfepas_sdk.camera.frames import Frame
from secfepas_sdk.camera.preprocess import PreprocessConfig, preprocess_face
from secfepas_sdk.camera.selection import SelectorChain
from secfepas_sdk.camera.sources import FrameSource
from secfepas_sdk.errors import (
    InvalidValueError,
    PeerError,
    ProtocolError,
    SecfepasError,
    SessionError,
    SourceError,
)
from secfepas_sdk.logsafe import safe_text

__all__ = ["CameraPipeline", "DropOldestQueue", "FaceFinder", "PipelineConfig", "PipelineStats"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class PipelineConfig:
    """``queue_size``: frames waiting for inference. ``pace``: "source" takes frames as
    the source gives them (live cameras); "realtime" releases a file's frames at their
    media time, so a recording behaves like a live camera. ``max_frames``: stop after
    that many analysed frames."""

    queue_size: int = 2
    pace: Literal["source", "realtime"] = "source"
    max_frames: int | None = None

    def __post_init__(self) -> None:
        if self.queue_size < 1:
            raise InvalidValueError("queue_size must be >= 1")
        if self.pace not in ("source", "realtime"):
            raise InvalidValueError("pace must be 'source' or 'realtime'")
        if self.max_frames is not None and self.max_frames < 1:
            raise InvalidValueError("max_frames must be >= 1")


@dataclass(slots=True)
class PipelineStats:
    """Counters of one pipeline run (mutable: the pipeline threads update them)."""

    captured: int = 0
    selected: int = 0
    dropped: int = 0  # selected frames dropped by the full queue (oldest first)
    no_face: int = 0
    analysed: int = 0
    errors: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


class _End:
    """Queue marker: the source is exhausted (``error`` set if it failed)."""

    def __init__(self, error: BaseException | None = None) -> None:
        self.error = error


class DropOldestQueue:
    """Thread -> event loop queue of bounded size; a put on a full queue drops the oldest."""

    def __init__(self, maxsize: int, loop: asyncio.AbstractEventLoop) -> None:
        self._items: collections.deque[Frame | _End] = collections.deque()
        self._maxsize = maxsize
        self._lock = threading.Lock()
        self._loop = loop
        self._ready = asyncio.Event()
        self.dropped = 0

    def put(self, item: Frame | _End) -> None:
        """Never blocks (called from the capture thread)."""
        with self._lock:
            if isinstance(item, Frame) and self._frames() >= self._maxsize:
                for i, old in enumerate(self._items):
                    if isinstance(old, Frame):
                        del self._items[i]
                        self.dropped += 1
                        break
            self._items.append(item)
        self._loop.call_soon_threadsafe(self._ready.set)

    def _frames(self) -> int:
        return sum(1 for x in self._items if isinstance(x, Frame))

    async def get(self) -> Frame | _End:
        while True:
            with self._lock:
                if self._items:
                    return self._items.popleft()
                self._ready.clear()
            await self._ready.wait()


class FaceFinder(Protocol):
    """What the pipeline needs of a detector (the MTCNN ``FaceDetector`` is one)."""

    def best(self, pixels: NDArray[np.uint8]) -> Face | None: ...


class CameraPipeline:
    """Analyse a source's selected frames through secure inference.

    ``detector`` is an object with ``best(pixels) -> Face | None`` (the MTCNN
    :class:`~secfepas_sdk.camera.detection.FaceDetector`); ``None`` analyses the
    whole frame (for sources that already deliver face crops).
    ``on_assessment`` gets every assessment (e.g. ``AlertService.submit``).
    """

    def __init__(
        self,
        source: FrameSource,
        client: SecureInferenceClient,
        *,
        selector: SelectorChain | None = None,
        detector: FaceFinder | None = None,
        preprocess: PreprocessConfig | None = None,
        on_assessment: Callable[[PainAssessment], object] | None = None,
        config: PipelineConfig | None = None,
    ) -> None:
        self.source = source
        self.client = client
        self.selector = selector
        self.detector = detector
        self.preprocess = preprocess
        self.on_assessment = on_assessment
        self.config = config or PipelineConfig()
        self.stats = PipelineStats()
        self._stop = threading.Event()

    def stop(self) -> None:
        """Ask the capture thread to end; run() then drains and returns."""
        self._stop.set()

    def _capture(self, queue: DropOldestQueue) -> None:
        """Capture thread: read, select, enqueue. Never waits for inference."""
        error: BaseException | None = None
        try:
            with self.source as src:
                first: tuple[float, float] | None = None
                for frame in src:
                    if self._stop.is_set():
                        break
                    self.stats.captured += 1
                    if self.config.pace == "realtime":
                        now = time.monotonic()
                        if first is None:
                            first = (now, frame.timestamp)
                        wait = (frame.timestamp - first[1]) - (now - first[0])
                        if wait > 0 and self._stop.wait(wait):
                            break
                    if self.selector is not None and not self.selector.select(frame):
                        continue
                    self.stats.selected += 1
                    queue.put(frame)
        except BaseException as exc:  # reported to the consumer, which re-raises
            error = exc
        finally:
            queue.put(_End(error))

    async def _tensor(self, frame: Frame) -> NDArray[np.float32] | None:
        pixels = frame.pixels
        cfg = self.preprocess or self._manifest_preprocess()
        if self.detector is None:
            h, w = pixels.shape[:2]
            box: tuple[float, float, float, float] = (0.0, 0.0, float(w), float(h))
            return await asyncio.to_thread(preprocess_face, pixels, box, _no_margin(cfg))
        face = await asyncio.to_thread(self.detector.best, pixels)
        if face is None:
            return None
        return await asyncio.to_thread(preprocess_face, pixels, face.box, cfg)

    def _manifest_preprocess(self) -> PreprocessConfig:
        # Sent by the edge: a peer, so validated (ModelPackageError if unusable).
        self.preprocess = PreprocessConfig.from_manifest(
            self.client.manifest, "the edge's manifest"
        )
        return self.preprocess

    async def run(self) -> AsyncIterator[PainAssessment]:
        """Yield one assessment per analysed frame until the source ends."""
        await self.client.connect()
        loop = asyncio.get_running_loop()
        queue = DropOldestQueue(self.config.queue_size, loop)
        capture = threading.Thread(
            target=self._capture, args=(queue,), name="secfepas-capture", daemon=True
        )
        capture.start()
        try:
            while True:
                item = await queue.get()
                self.stats.dropped = queue.dropped
                if isinstance(item, _End):
                    if item.error is not None:
                        if isinstance(item.error, SecfepasError):
                            raise item.error
                        raise SourceError(f"frame source failed: {item.error}") from item.error
                    return
                assessment = await self._analyse(item)
                if assessment is None:
                    continue
                self.stats.analysed += 1
                if self.on_assessment is not None:
                    self.on_assessment(assessment)
                yield assessment
                if self.config.max_frames and self.stats.analysed >= self.config.max_frames:
                    return
        finally:
            self._stop.set()
            await asyncio.to_thread(capture.join, 10.0)
            self.stats.dropped = queue.dropped

    async def _analyse(self, frame: Frame) -> PainAssessment | None:
        tensor = await self._tensor(frame)
        if tensor is None:
            self.stats.no_face += 1
            return None
        try:
            return await self.client.infer(
                tensor, frame_time=frame.wall_time, frame_index=frame.index
            )
        except PeerError as exc:
            if exc.code in FATAL_CODES:
                raise
            self.stats.errors += 1
            log.warning("frame %d not analysed: %s", frame.index, safe_text(exc))
        except (ProtocolError, SessionError) as exc:  # bad bytes, lost link: reconnect next time
            self.stats.errors += 1
            log.warning("frame %d not analysed: %s", frame.index, safe_text(exc))
        return None


def _no_margin(cfg: PreprocessConfig) -> PreprocessConfig:
    return replace(cfg, margin=0.0)
