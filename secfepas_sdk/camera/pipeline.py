"""The camera pipeline: source -> selection -> [bounded queue] -> detection ->
preprocessing -> secure inference -> assessments (and the alert callback).

Capture and selection run in their own thread and never wait for inference:
between them and the inference side sits a bounded queue that drops the
OLDEST frame when full (the newest picture of a patient matters most) and
counts every drop.

When inferences start is the schedule's job (:mod:`secfepas_sdk.camera.schedule`).
Under the default ``constant`` schedule a preparer task detects and preprocesses
selected frames ahead of time and keeps the newest face; at every slot boundary
exactly one inference starts, on that face or on the dummy tensor. Under
``on-change`` every selected frame with a face is analysed at once, which shows
the edge when a face is present and when it moves.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import asdict, dataclass, replace
from typing import Literal, Protocol

import numpy as np
from numpy.typing import NDArray

from secfepas_sdk.alerts.assessment import PainAssessment
from secfepas_sdk.camera.client import FATAL_CODES, SecureInferenceClient
from secfepas_sdk.camera.detection import Face
from secfepas_sdk.camera.frame_queue import DropOldestQueue, End, raise_source_error
from secfepas_sdk.camera.frames import Frame
from secfepas_sdk.camera.preprocess import PreprocessConfig, preprocess_face
from secfepas_sdk.camera.schedule import (
    DEFAULT_SCHEDULE,
    SCHEDULES,
    MonotonicClock,
    ScheduleKind,
    SlotClock,
    SlotSchedule,
    dummy_tensor,
)
from secfepas_sdk.camera.selection import DEFAULT_PERIOD_S, PeriodicSelector, SelectorChain
from secfepas_sdk.camera.sources import FrameSource
from secfepas_sdk.errors import (
    InvalidValueError,
    PeerError,
    ProtocolError,
    SessionError,
)
from secfepas_sdk.logsafe import safe_text

__all__ = ["CameraPipeline", "DropOldestQueue", "FaceFinder", "PipelineConfig", "PipelineStats"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class PipelineConfig:
    """``queue_size``: frames waiting for inference. ``pace``: "source" takes frames as
    the source gives them (live cameras); "realtime" releases a file's frames at their
    media time, so a recording behaves like a live camera. ``max_frames``: stop after
    that many analysed frames. ``schedule``: "constant" (default: one inference per
    ``schedule_period_s``, on a dummy tensor when there is no new face) or
    "on-change" (analyse each selected face at once; leaks presence and motion to
    the edge). ``schedule_period_s`` defaults to the selector's period (5 s)."""

    queue_size: int = 2
    pace: Literal["source", "realtime"] = "source"
    max_frames: int | None = None
    schedule: ScheduleKind = DEFAULT_SCHEDULE
    schedule_period_s: float | None = None

    def __post_init__(self) -> None:
        if self.queue_size < 1:
            raise InvalidValueError("queue_size must be >= 1")
        if self.pace not in ("source", "realtime"):
            raise InvalidValueError("pace must be 'source' or 'realtime'")
        if self.max_frames is not None and self.max_frames < 1:
            raise InvalidValueError("max_frames must be >= 1")
        if self.schedule not in SCHEDULES:
            raise InvalidValueError(f"schedule must be one of {SCHEDULES}")
        if self.schedule_period_s is not None and not (
            math.isfinite(self.schedule_period_s) and self.schedule_period_s > 0
        ):
            raise InvalidValueError("schedule_period_s must be > 0")


@dataclass(slots=True)
class PipelineStats:
    """Counters of one pipeline run (mutable: the pipeline threads update them)."""

    captured: int = 0
    selected: int = 0
    dropped: int = 0  # selected frames dropped by the full queue (oldest first)
    no_face: int = 0
    analysed: int = 0
    errors: int = 0
    # constant schedule only: slots used, those run on the dummy tensor, slots lost
    # while an inference overran, and faces replaced by a newer one before their slot
    slots: int = 0
    dummies: int = 0
    missed_slots: int = 0
    superseded: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


class FaceFinder(Protocol):
    """What the pipeline needs of a detector (the MTCNN ``FaceDetector`` is one)."""

    def best(self, pixels: NDArray[np.uint8]) -> Face | None: ...


class CameraPipeline:
    """Analyse a source's selected frames through secure inference.

    ``detector`` is an object with ``best(pixels) -> Face | None`` (the MTCNN
    :class:`~secfepas_sdk.camera.detection.FaceDetector`); ``None`` analyses the
    whole frame (for sources that already deliver face crops).
    ``on_assessment`` gets every assessment (e.g. ``AlertService.submit``).
    ``clock`` times the constant schedule's slots (default: the monotonic clock;
    :class:`~secfepas_sdk.camera.schedule.ReplayClock` replays a recording
    deterministically).
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
        clock: SlotClock | None = None,
    ) -> None:
        self.source = source
        self.client = client
        self.selector = selector
        self.detector = detector
        self.preprocess = preprocess
        self.on_assessment = on_assessment
        self.config = config or PipelineConfig()
        self.clock: SlotClock = clock or MonotonicClock()
        self.stats = PipelineStats()
        self._stop = threading.Event()
        self._wakeup: tuple[asyncio.AbstractEventLoop, asyncio.Event] | None = None

    def stop(self) -> None:
        """Ask the pipeline to end (from any thread): capture stops; under on-change run()
        drains the queue, under constant no further slot starts; then run() returns."""
        self._stop.set()
        if self._wakeup is not None:
            loop, wakeup = self._wakeup
            loop.call_soon_threadsafe(wakeup.set)

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
            queue.put(End(error))

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
        """Yield one assessment per analysed frame until the source ends.

        The session is set up before capture and before the first slot, and
        kept for the whole run. Inference runs in a driver task that never
        waits for this generator's consumer, so a slow consumer (or alert
        callback) cannot delay a slot.
        """
        loop = asyncio.get_running_loop()
        self._wakeup = (loop, asyncio.Event())
        if self._stop.is_set():
            return
        await self.client.connect()
        queue = DropOldestQueue(self.config.queue_size, loop)
        results: asyncio.Queue[PainAssessment | End] = asyncio.Queue()
        capture = threading.Thread(
            target=self._capture, args=(queue,), name="secfepas-capture", daemon=True
        )
        capture.start()
        drive = (
            self._drive_constant if self.config.schedule == "constant" else self._drive_on_change
        )
        driver = asyncio.ensure_future(self._guarded(drive(queue, results), results))
        try:
            while True:
                item = await results.get()
                if isinstance(item, End):
                    if item.error is not None:
                        raise item.error
                    return
                if self.on_assessment is not None:
                    self.on_assessment(item)
                yield item
        finally:
            driver.cancel()
            await asyncio.gather(driver, return_exceptions=True)
            self._stop.set()
            await asyncio.to_thread(capture.join, 10.0)
            self.stats.dropped = queue.dropped

    @staticmethod
    async def _guarded(work: Awaitable[None], results: asyncio.Queue[PainAssessment | End]) -> None:
        """Run a driver; hand its end (or its error) to the consumer as an ``End``."""
        try:
            await work
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            results.put_nowait(End(exc))
        else:
            results.put_nowait(End())

    def _done(self) -> bool:
        return bool(self.config.max_frames and self.stats.analysed >= self.config.max_frames)

    async def _drive_on_change(
        self, queue: DropOldestQueue, results: asyncio.Queue[PainAssessment | End]
    ) -> None:
        """Analyse each selected frame that has a face, as soon as it is there (leaky)."""
        while not self._done():
            item = await queue.get()
            self.stats.dropped = queue.dropped
            if isinstance(item, End):
                raise_source_error(item)
                return
            tensor = await self._tensor(item)
            if tensor is None:
                self.stats.no_face += 1
                continue
            assessment = await self._infer(tensor, item, what=f"frame {item.index}")
            if assessment is not None:
                self.stats.analysed += 1
                results.put_nowait(assessment)

    async def _drive_constant(
        self, queue: DropOldestQueue, results: asyncio.Queue[PainAssessment | End]
    ) -> None:
        """One inference per slot: the newest prepared face, else the dummy tensor."""
        clock = self.clock
        cfg = self.preprocess or self._manifest_preprocess()
        dummy = dummy_tensor(cfg.input_shape)  # the shape every real tensor has
        slots = SlotSchedule(self._schedule_period(), clock)
        state = _Prepared()
        preparer = asyncio.ensure_future(self._prepare(queue, clock, state))
        slots.start()
        try:
            while not self._done():
                if preparer.done():
                    preparer.result()  # re-raise a detection or source failure
                    if state.pending is None:
                        return  # the source has ended and its last face is analysed
                if not await self._sleep_unless_stopped(clock.sleep_until(slots.deadline)):
                    return
                taken, state.pending = state.pending, None
                self.stats.slots += 1
                tensor = dummy if taken is None else taken[1]
                assessment = await self._infer(
                    tensor,
                    None if taken is None else taken[0],
                    what=f"slot {slots.index}",
                )
                if taken is None:
                    self.stats.dummies += 1  # the result is discarded unread
                elif assessment is not None:
                    self.stats.analysed += 1
                    results.put_nowait(assessment)
                slots.advance()
                self.stats.missed_slots = slots.missed
        finally:
            preparer.cancel()
            await asyncio.gather(preparer, return_exceptions=True)
            self.stats.dropped = queue.dropped

    async def _sleep_unless_stopped(self, sleep: Awaitable[None]) -> bool:
        """Wait for the slot; False if stop() came first (the slot then never starts)."""
        assert self._wakeup is not None
        sleeper = asyncio.ensure_future(sleep)
        stopper = asyncio.ensure_future(self._wakeup[1].wait())
        try:
            await asyncio.wait({sleeper, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopper.cancel()
            if not sleeper.done():
                sleeper.cancel()
            await asyncio.gather(sleeper, stopper, return_exceptions=True)
        if self._stop.is_set():
            return False
        sleeper.result()
        return True

    async def _prepare(self, queue: DropOldestQueue, clock: SlotClock, state: _Prepared) -> None:
        """Detect and preprocess selected frames ahead of their slot; keep the newest face."""
        while True:
            item = await queue.get()
            self.stats.dropped = queue.dropped
            if isinstance(item, End):
                await clock.source_ended()
                raise_source_error(item)
                return
            await clock.admit(item.timestamp)
            tensor = await self._tensor(item)
            if tensor is None:
                self.stats.no_face += 1
                continue
            if state.pending is not None:
                self.stats.superseded += 1
            state.pending = (item, tensor)

    def _schedule_period(self) -> float:
        if self.config.schedule_period_s is not None:
            return self.config.schedule_period_s
        for step in () if self.selector is None else self.selector.steps:
            if isinstance(step, PeriodicSelector) and step.period_s > 0:
                return step.period_s
        return DEFAULT_PERIOD_S

    async def _infer(
        self, tensor: NDArray[np.float32], frame: Frame | None, *, what: str
    ) -> PainAssessment | None:
        """One secure inference; a non-fatal failure is counted and logged (never which
        frame was real or dummy, nor anything else derived from the pixels)."""
        try:
            return await self.client.infer(
                tensor,
                frame_time=None if frame is None else frame.wall_time,
                frame_index=0 if frame is None else frame.index,
            )
        except PeerError as exc:
            if exc.code in FATAL_CODES:
                raise
            self.stats.errors += 1
            log.warning("%s not analysed: %s", what, safe_text(exc))
        except (ProtocolError, SessionError) as exc:  # bad bytes, lost link: reconnect next time
            self.stats.errors += 1
            log.warning("%s not analysed: %s", what, safe_text(exc))
        return None


class _Prepared:
    """The newest face ready for the next slot (written by the preparer task only)."""

    __slots__ = ("pending",)

    def __init__(self) -> None:
        self.pending: tuple[Frame, NDArray[np.float32]] | None = None


def _no_margin(cfg: PreprocessConfig) -> PreprocessConfig:
    return replace(cfg, margin=0.0)
