"""The bounded hand-over between the capture thread and the inference side.

A put on a full queue drops the OLDEST frame (the newest picture of a patient
matters most) and counts it; a put never blocks, so capture never waits for
inference. ``End`` marks the end of the source, with its error if it failed.
"""

from __future__ import annotations

import asyncio
import collections
import threading

from secfepas_sdk.camera.frames import Frame
from secfepas_sdk.errors import SecfepasError, SourceError

__all__ = ["DropOldestQueue", "End", "raise_source_error"]


class End:
    """Queue marker: the source is exhausted (``error`` set if it failed)."""

    def __init__(self, error: BaseException | None = None) -> None:
        self.error = error


class DropOldestQueue:
    """Thread -> event loop queue of bounded size; a put on a full queue drops the oldest."""

    def __init__(self, maxsize: int, loop: asyncio.AbstractEventLoop) -> None:
        self._items: collections.deque[Frame | End] = collections.deque()
        self._maxsize = maxsize
        self._lock = threading.Lock()
        self._loop = loop
        self._ready = asyncio.Event()
        self.dropped = 0

    def put(self, item: Frame | End) -> None:
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

    async def get(self) -> Frame | End:
        while True:
            with self._lock:
                if self._items:
                    return self._items.popleft()
                self._ready.clear()
            await self._ready.wait()


def raise_source_error(end: End) -> None:
    if end.error is None:
        return
    if isinstance(end.error, SecfepasError):
        raise end.error
    raise SourceError(f"frame source failed: {end.error}") from end.error
