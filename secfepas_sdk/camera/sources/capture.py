"""OpenCV capture: video files, V4L2 devices and network streams (RTSP, HTTP, ...)."""

from __future__ import annotations

import logging
import math
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from secfepas_sdk.camera.frames import Frame, as_bgr
from secfepas_sdk.camera.sources.base import FrameSource
from secfepas_sdk.camera.sources.base import cv2_module as _cv2
from secfepas_sdk.errors import SourceError

__all__ = ["URL_SCHEMES", "VideoCaptureSource", "describe"]

_log = logging.getLogger(__name__)

URL_SCHEMES = ("rtsp://", "rtsps://", "http://", "https://", "rtmp://", "udp://", "tcp://")
# A file that fails this many grabs in a row has ended; a live source, which
# waits up to its read time-out on each grab, gives up sooner.
_MAX_FAILED_GRABS_FILE = 8
_MAX_FAILED_GRABS_LIVE = 3


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
            and not target.startswith(URL_SCHEMES)
            and not target.startswith("/dev/video")
        )
        super().__init__(source_id or describe(self._target))
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


def describe(target: str | int) -> str:
    if isinstance(target, int):
        return f"camera device {target}"
    if target.startswith(URL_SCHEMES):
        # Never echo credentials embedded in a URL into messages or logs.
        scheme, _, rest = target.partition("://")
        host = rest.rsplit("@", 1)[-1]
        return f"{scheme}://{host}"
    return target
