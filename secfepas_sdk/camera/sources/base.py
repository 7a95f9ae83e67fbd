"""The interface every frame source implements, and its counters.

A source is a context manager with ``close()`` that yields :class:`Frame`s;
nothing touches hardware until ``open()``.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

from secfepas_sdk._extras import require
from secfepas_sdk.camera.frames import Frame
from secfepas_sdk.errors import InvalidValueError

__all__ = ["FrameSource", "SourceStats", "cv2_module"]


def cv2_module() -> Any:
    """OpenCV, or the error naming the ``camera`` extra."""
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
