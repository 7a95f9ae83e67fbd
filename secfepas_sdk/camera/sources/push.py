"""Frames pushed by firmware that owns its capture loop (buffer ownership passes on push)."""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Iterator

import numpy as np

from secfepas_sdk.camera.frames import Frame, Pixels, as_bgr
from secfepas_sdk.camera.sources.base import FrameSource, SourceStats
from secfepas_sdk.errors import InvalidValueError, SourceError

__all__ = ["PushSource"]

_log = logging.getLogger(__name__)


class PushSource(FrameSource):
    """Frames pushed by firmware that owns its capture loop.

    ``push()`` never blocks: the queue holds at most ``maxsize`` frames and a
    full queue drops its oldest frame (counted in ``stats.dropped``), so capture
    never waits on analysis. ``end()`` lets the consumer drain and stop.
    """

    def __init__(self, *, maxsize: int = 4, source_id: str = "push", assume: str = "bgr"):
        if maxsize < 1:
            raise InvalidValueError(f"maxsize must be >= 1, got {maxsize}")
        if assume not in ("bgr", "rgb"):
            raise InvalidValueError(f"assume must be 'bgr' or 'rgb', got {assume!r}")
        super().__init__(source_id)
        self._queue: deque[Frame] = deque()
        self._maxsize = maxsize
        self._assume = assume
        self._cond = threading.Condition()
        self._ended = False
        self._dropped = 0
        self._pushed = 0
        self._last_t = -math.inf
        self._t0: float | None = None  # monotonic time of the first push without a timestamp

    def _open(self) -> None:
        pass  # firmware may push before the consumer opens; nothing to acquire

    def _close(self) -> None:
        self.end()

    def push(
        self, pixels: Pixels, timestamp: float | None = None, *, wall_time: float | None = None
    ) -> None:
        """Copy ``pixels`` (BGR, grey or BGRA uint8) into the queue with its capture times.

        ``timestamp`` is the media time (the sensor's clock, seconds, never going
        back; default: seconds since the first push); ``wall_time`` is the UTC
        POSIX capture time (default: ``time.time()`` now). Call it right at capture.
        """
        wall = time.time() if wall_time is None else float(wall_time)
        if timestamp is None:
            now = time.monotonic()
            if self._t0 is None:
                self._t0 = now
            timestamp = now - self._t0
        if not math.isfinite(timestamp):
            raise SourceError(f"{self.source_id}: timestamp {timestamp!r} is not finite")
        owned = np.array(as_bgr(pixels, source_id=self.source_id, assume=self._assume), order="C")
        with self._cond:
            if self._ended:
                raise SourceError(f"{self.source_id}: push after end of stream")
            if timestamp < self._last_t:
                raise SourceError(
                    f"{self.source_id}: timestamp went back from {self._last_t} to {timestamp}"
                )
            try:
                frame = Frame(
                    pixels=owned,
                    timestamp=timestamp,
                    index=self._pushed,
                    source_id=self.source_id,
                    wall_time=wall,
                )
            except ValueError as exc:
                raise SourceError(f"{self.source_id}: {exc}") from exc
            self._last_t = timestamp
            self._pushed += 1
            if len(self._queue) >= self._maxsize:
                self._queue.popleft()
                self._dropped += 1
            self._queue.append(frame)
            self._cond.notify()

    def end(self) -> None:
        """Mark the end of the stream; queued frames are still delivered."""
        with self._cond:
            self._ended = True
            self._cond.notify_all()

    def get(self, timeout: float | None = None) -> Frame | None:
        """The oldest queued frame, waiting up to ``timeout``; None at end or on time-out."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._queue or self._ended, timeout):
                return None
            return self._queue.popleft() if self._queue else None

    def _frames(self) -> Iterator[Frame]:
        while True:
            frame = self.get()
            if frame is None:
                return
            yield frame

    @property
    def pending(self) -> int:
        with self._cond:
            return len(self._queue)

    @property
    def stats(self) -> SourceStats:
        return SourceStats(frames=self._delivered, corrupt=0, dropped=self._dropped)
