"""Frame sources behind one hardware-abstracted interface.

``with open_source(uri) as src: for frame in src: ...`` works the same for a
video file, a V4L2 device, an RTSP/HTTP stream, an image folder, frames pushed
by firmware, or synthetic frames. Nothing touches hardware until ``open()``.
"""

from __future__ import annotations

import abc
import logging
import math
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import numpy as np

from secfepas_sdk._extras import require
from secfepas_sdk.camera.frames import Frame, Pixels, as_bgr
from secfepas_sdk.errors import InvalidValueError, SourceError

__all__ = [
    "IMAGE_SUFFIXES",
    "FrameSource",
    "ImageFolderSource",
    "PushSource",
    "SourceStats",
    "SyntheticSource",
    "VideoCaptureSource",
    "open_source",
]

_log = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm"})
_URL_SCHEMES = ("rtsp://", "rtsps://", "http://", "https://", "rtmp://", "udp://", "tcp://")
# A file that fails this many grabs in a row has ended; a live source, which
# waits up to its read time-out on each grab, gives up sooner.
_MAX_FAILED_GRABS_FILE = 8
_MAX_FAILED_GRABS_LIVE = 3


def _cv2() -> Any:
    return require("cv2", "camera")


@dataclass(frozen=True, slots=True, kw_only=True)
class SourceStats:
    """Counters since the source was opened."""

    frames: int
    """Frames delivered to the consumer."""
    corrupt: int
    """Frames that could not be decoded and were skipped."""
    dropped: int
    """Frames discarded by a full queue (push source only)."""


class FrameSource(abc.ABC):
    """Base class: a context manager that iterates :class:`Frame` objects.

    Subclasses implement ``_open``, ``_close`` and ``_frames``. Iterating an
    unopened source opens it; iteration ends cleanly at the end of the stream.
    """

    def __init__(self, source_id: str) -> None:
        if not source_id:
            raise InvalidValueError("source_id must not be empty")
        self.source_id = source_id
        self._opened = False
        self._delivered = 0
        self._corrupt = 0

    # -- lifecycle -------------------------------------------------------
    def open(self) -> None:
        if not self._opened:
            self._open()
            self._opened = True

    def close(self) -> None:
        if self._opened:
            self._opened = False
            self._close()

    def __enter__(self) -> Self:
        self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __iter__(self) -> Iterator[Frame]:
        self.open()
        for frame in self._frames():
            self._delivered += 1
            yield frame

    @property
    def stats(self) -> SourceStats:
        return SourceStats(frames=self._delivered, corrupt=self._corrupt, dropped=0)

    # -- for subclasses --------------------------------------------------
    @abc.abstractmethod
    def _open(self) -> None: ...

    @abc.abstractmethod
    def _close(self) -> None: ...

    @abc.abstractmethod
    def _frames(self) -> Iterator[Frame]: ...

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.source_id!r})"


class VideoCaptureSource(FrameSource):
    """OpenCV capture of a video file, a V4L2 device or a network stream.

    Files are timestamped with their media time (so selection is reproducible);
    devices and streams with ``time.monotonic()`` since open, taken when the
    frame is grabbed. Every frame's ``wall_time`` is ``time.time()`` at the grab.
    """

    def __init__(
        self,
        target: str | int | Path,
        *,
        source_id: str | None = None,
        open_timeout_s: float = 10.0,
        read_timeout_s: float = 10.0,
    ) -> None:
        self._target: str | int = target if isinstance(target, int) else str(target)
        self._is_file = isinstance(target, Path) or (
            isinstance(target, str)
            and not target.startswith(_URL_SCHEMES)
            and not target.startswith("/dev/video")
        )
        super().__init__(source_id or _describe(self._target))
        self._open_timeout_ms = int(open_timeout_s * 1000)
        self._read_timeout_ms = int(read_timeout_s * 1000)
        self._cap: Any = None
        self._fps = 0.0

    def _open(self) -> None:
        cv2 = _cv2()
        if self._is_file:
            path = Path(str(self._target))
            if not path.exists():
                raise SourceError(f"{self.source_id}: no such file")
            if not path.is_file():
                raise SourceError(f"{self.source_id}: not a regular file")
        params = [
            cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
            self._open_timeout_ms,
            cv2.CAP_PROP_READ_TIMEOUT_MSEC,
            self._read_timeout_ms,
        ]
        target: str | int = self._target
        backend = cv2.CAP_FFMPEG
        if isinstance(target, str) and target.startswith("/dev/video"):
            if not target[len("/dev/video") :].isdigit():
                raise SourceError(f"{self.source_id}: expected /dev/videoN")
            target = int(target[len("/dev/video") :])
        if isinstance(target, int):
            # OpenCV's V4L2 backend opens devices by index, not by path.
            backend = cv2.CAP_V4L2 if sys.platform.startswith("linux") else cv2.CAP_ANY
        cap = cv2.VideoCapture(target, backend, params)
        if not cap.isOpened():
            cap.release()
            what = "is not a readable video" if self._is_file else "cannot be opened"
            raise SourceError(f"{self.source_id}: {what}")
        self._cap = cap
        fps = float(cap.get(cv2.CAP_PROP_FPS))
        self._fps = fps if math.isfinite(fps) and 0.0 < fps < 1000.0 else 0.0

    def _close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None

    def _timestamp(self, index: int, t0: float) -> float:
        if not self._is_file:
            return time.monotonic() - t0
        msec = float(self._cap.get(_cv2().CAP_PROP_POS_MSEC))
        if math.isfinite(msec) and (msec > 0.0 or index == 0):
            return msec / 1000.0
        return index / self._fps if self._fps else float(index)

    def _frames(self) -> Iterator[Frame]:
        cv2 = _cv2()
        t0 = time.monotonic()
        index = 0
        failed = 0  # grabs that failed since the last good frame
        last_t = -math.inf
        total = float(self._cap.get(cv2.CAP_PROP_FRAME_COUNT)) if self._is_file else 0.0
        while self._cap is not None:
            if not self._cap.grab():
                # FFmpeg fails a grab on an undecodable packet and goes on with the
                # next one; only failures followed by a good frame were corrupt frames.
                failed += 1
                at_end = total > 0 and index + failed >= total
                limit = _MAX_FAILED_GRABS_FILE if self._is_file else _MAX_FAILED_GRABS_LIVE
                if at_end or failed > limit:
                    return
                continue
            if failed:
                self._corrupt += failed
                index += failed
                _log.warning("%s: skipped %d undecodable frame(s)", self.source_id, failed)
                failed = 0
            wall = time.time()
            t = self._timestamp(index, t0)
            ok, pixels = self._cap.retrieve()
            index += 1
            if not ok or pixels is None or pixels.size == 0:
                self._corrupt += 1
                _log.warning("%s: skipped an undecodable frame", self.source_id)
                continue
            t = max(t, last_t)  # decoders may report a stale position; never go back
            last_t = t
            yield Frame(
                pixels=as_bgr(pixels, source_id=self.source_id),
                timestamp=t,
                index=index - 1,
                source_id=self.source_id,
                wall_time=wall,
            )


class ImageFolderSource(FrameSource):
    """The images of one folder in sorted name order, timestamped at ``i / fps``.

    ``wall_time`` is when each image was read.
    """

    def __init__(self, folder: str | Path, *, fps: float = 1.0, source_id: str | None = None):
        if not (math.isfinite(fps) and fps > 0):
            raise InvalidValueError(f"fps must be > 0, got {fps!r}")
        self._folder = Path(folder)
        super().__init__(source_id or str(self._folder))
        self._fps = fps
        self._files: list[Path] = []

    def _open(self) -> None:
        if not self._folder.is_dir():
            raise SourceError(f"{self.source_id}: no such folder")
        files = sorted(
            p for p in self._folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
        )
        if not files:
            raise SourceError(
                f"{self.source_id}: folder holds no images ({sorted(IMAGE_SUFFIXES)})"
            )
        self._files = files

    def _close(self) -> None:
        self._files = []

    def _frames(self) -> Iterator[Frame]:
        cv2 = _cv2()
        for i, path in enumerate(list(self._files)):
            wall = time.time()
            # IMREAD_COLOR turns grey, RGBA and 16-bit images into 8-bit BGR.
            pixels = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if pixels is None:
                self._corrupt += 1
                _log.warning("%s: skipped unreadable image %s", self.source_id, path.name)
                continue
            yield Frame(
                pixels=as_bgr(pixels, source_id=f"{self.source_id}/{path.name}"),
                timestamp=i / self._fps,
                index=i,
                source_id=self.source_id,
                wall_time=wall,
            )


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


class SyntheticSource(FrameSource):
    """Deterministic test frames: a textured scene per segment plus sensor noise.

    ``scene_changes`` are frame indices where a new scene starts; ``timestamps``
    overrides the regular ``i / fps`` clock (to test variable frame rates);
    ``wall_time`` is when each frame was made.
    """

    def __init__(
        self,
        *,
        count: int,
        fps: float = 10.0,
        width: int = 640,
        height: int = 480,
        scene_changes: Sequence[int] = (),
        noise_std: float = 0.0,
        timestamps: Sequence[float] | None = None,
        seed: int = 0,
        source_id: str = "synthetic",
    ) -> None:
        if count < 0 or width < 1 or height < 1 or not (fps > 0):
            raise InvalidValueError("count >= 0, width >= 1, height >= 1 and fps > 0 are required")
        if timestamps is not None and len(timestamps) != count:
            raise InvalidValueError("timestamps must have one entry per frame")
        super().__init__(source_id)
        self._count = count
        self._fps = fps
        self._size = (height, width)
        self._changes = sorted(set(scene_changes))
        self._noise = noise_std
        self._timestamps = list(timestamps) if timestamps is not None else None
        self._seed = seed

    def _open(self) -> None:
        pass

    def _close(self) -> None:
        pass

    def _scene(self, k: int) -> Pixels:
        rng = np.random.default_rng([self._seed, k])
        h, w = self._size
        coarse = rng.integers(0, 256, size=(max(h // 32, 2), max(w // 32, 2), 3), dtype=np.uint8)
        cv2 = _cv2()
        return np.ascontiguousarray(cv2.resize(coarse, (w, h), interpolation=cv2.INTER_LINEAR))

    def _frames(self) -> Iterator[Frame]:
        rng = np.random.default_rng([self._seed, 1 << 20])
        scene_no = 0
        base = self._scene(0)
        for i in range(self._count):
            if scene_no < len(self._changes) and i >= self._changes[scene_no]:
                scene_no += 1
                base = self._scene(scene_no)
            pixels = base
            if self._noise > 0:
                noisy = base + rng.normal(0.0, self._noise, size=base.shape)
                pixels = np.clip(noisy, 0, 255).astype(np.uint8)
            else:
                pixels = base.copy()
            t = self._timestamps[i] if self._timestamps is not None else i / self._fps
            yield Frame(pixels=pixels, timestamp=t, index=i, source_id=self.source_id)


def _describe(target: str | int) -> str:
    if isinstance(target, int):
        return f"camera device {target}"
    if target.startswith(_URL_SCHEMES):
        # Never echo credentials embedded in a URL into messages or logs.
        scheme, _, rest = target.partition("://")
        host = rest.rsplit("@", 1)[-1]
        return f"{scheme}://{host}"
    return target


def open_source(
    uri_or_path: str | int | Path, *, fps: float = 1.0, push_maxsize: int = 4
) -> FrameSource:
    """Pick the implementation for a path, device or URL (nothing is opened yet).

    - an int, ``"0"`` or ``/dev/videoN``: a V4L2 device;
    - ``rtsp://``, ``http(s)://`` and other stream URLs: OpenCV/FFmpeg;
    - ``push:``: a :class:`PushSource` for firmware;
    - ``synthetic:``: a :class:`SyntheticSource` (100 frames, for trials);
    - a folder: :class:`ImageFolderSource` at ``fps``;
    - anything else: a video file (a missing file raises :class:`SourceError`).
    """
    if isinstance(uri_or_path, int):
        return VideoCaptureSource(uri_or_path)
    target = str(uri_or_path)
    if not target:
        raise SourceError("empty source: give a file, folder, device or URL")
    if target.isdigit():
        return VideoCaptureSource(int(target))
    if target.startswith("/dev/video") or target.startswith(_URL_SCHEMES):
        return VideoCaptureSource(target)
    if target == "push:":
        return PushSource(maxsize=push_maxsize)
    if target == "synthetic:":
        return SyntheticSource(count=100)
    path = Path(target)
    if path.is_dir():
        return ImageFolderSource(path, fps=fps)
    if not path.exists():
        raise SourceError(f"{target}: no such file, folder or device")
    return VideoCaptureSource(path)
