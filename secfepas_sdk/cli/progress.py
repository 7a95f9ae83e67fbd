"""A one-line progress indicator for long CLI work, on stderr, only on a terminal.

Machine-readable output (``--json``) and redirected stderr stay clean: the
indicator is off unless stderr is a TTY and the caller did not ask for JSON.
It shows what is happening and the seconds elapsed, redrawn by a daemon thread,
so work that reports no steps (a model import, one secure inference) still shows
that it is alive. Standard library only: the CLI must not need an extra for it.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import TextIO

__all__ = ["Progress"]

_REFRESH_S = 0.25


class Progress:
    """``with Progress("importing", enabled=not args.json) as p: p.update("step 2/3")``."""

    def __init__(self, label: str, *, enabled: bool = True, stream: TextIO | None = None) -> None:
        self._stream = stream if stream is not None else sys.stderr
        self.enabled = enabled and _is_tty(self._stream)
        self._label = label
        self._note = ""
        self._started = time.monotonic()
        self._width = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Progress:
        if self.enabled:
            self._draw()
            self._thread = threading.Thread(target=self._redraw, name="progress", daemon=True)
            self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        with self._lock:
            self._erase()

    def update(self, note: str, *, label: str | None = None) -> None:
        """Say what is happening now (for example ``inference 2/3``)."""
        with self._lock:
            self._note = note
            if label is not None:
                self._label = label
            if self.enabled and not self._stop.is_set():
                self._draw_locked()

    @contextmanager
    def paused(self) -> Iterator[None]:
        """Erase the line while the caller prints its own output, then redraw it."""
        with self._lock:
            self._erase()
            yield
            if self.enabled and not self._stop.is_set():
                self._draw_locked()

    def _redraw(self) -> None:
        while not self._stop.wait(_REFRESH_S):
            self._draw()

    def _draw(self) -> None:
        with self._lock:
            if not self._stop.is_set():
                self._draw_locked()

    def _draw_locked(self) -> None:
        elapsed = time.monotonic() - self._started
        text = f"{self._label}" + (f": {self._note}" if self._note else "") + f"  {elapsed:.0f} s"
        pad = max(self._width - len(text), 0)
        self._stream.write("\r" + text + " " * pad)
        self._stream.flush()
        self._width = len(text)

    def _erase(self) -> None:
        if self.enabled and self._width:
            self._stream.write("\r" + " " * self._width + "\r")
            self._stream.flush()
            self._width = 0


def _is_tty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a closed or unusual stream
        return False
