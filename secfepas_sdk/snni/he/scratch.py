"""Move SEAL objects to and from bytes through anonymous memory, never a file.

``tenseal.sealapi`` serialises only to and from paths. The camera's objects hold
its share (for the first layer, the image itself) and the edge's hold weights, so
no path here may name a file system: a crash would leave the bytes behind, and a
temporary directory may be on disk. Each thread gets one Linux memfd
(``memfd_create``: anonymous, swappable like any process memory, in no
directory) and SEAL reads and writes it as ``/proc/self/fd/N``. The memory goes
with the last descriptor: at :meth:`SealScratch.close`, on garbage collection,
or when the process dies, even by SIGKILL. There is deliberately no fallback
to a directory: without memfd (non-Linux) the engine refuses to run.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

from secfepas_sdk.errors import SnniError

__all__ = ["SealScratch"]

_MEMFD_NAME = "secfepas-he"


def _new_memfd() -> tuple[int, str]:
    create = getattr(os, "memfd_create", None)
    if create is None:
        raise SnniError("the HE engine needs Linux memfd_create (anonymous memory for SEAL)")
    fd: int = create(_MEMFD_NAME, os.MFD_CLOEXEC)
    path = f"/proc/self/fd/{fd}"
    try:
        os.stat(path)
    except OSError as exc:
        os.close(fd)
        raise SnniError(f"the HE engine needs /proc to reach its memfd: {exc}") from exc
    return fd, path


def _close_all(fds: list[int]) -> None:
    while fds:
        with suppress(OSError):
            os.close(fds.pop())


class SealScratch:
    """SEAL ``save``/``load`` through memfds. Each call borrows one from a free
    list (two parties in one process, as in tests, never share one), so there are
    never more memfds than calls running at once."""

    def __init__(self) -> None:
        self._free: list[tuple[int, str]] = []
        self._fds: list[int] = []
        self._lock = threading.Lock()
        self._closed = False
        # Garbage collection closes whatever is left (no call can be running then).
        weakref.finalize(self, _close_all, self._fds)

    @contextmanager
    def _memfd(self) -> Iterator[tuple[int, str]]:
        with self._lock:
            if self._closed:
                raise SnniError("the HE scratch memory is closed")
            if self._free:
                slot = self._free.pop()
            else:
                slot = _new_memfd()
                self._fds.append(slot[0])
        try:
            yield slot
        finally:
            os.ftruncate(slot[0], 0)  # free the pages: no share outlives its call
            with self._lock:
                if self._closed:  # close() ran meanwhile: this one is the last user
                    self._fds.remove(slot[0])
                    os.close(slot[0])
                else:
                    self._free.append(slot)

    def save(self, obj: Any) -> bytes:
        """The serialised bytes of a SEAL object (SEAL truncates the memfd first)."""
        with self._memfd() as (fd, path):
            obj.save(path)
            size = os.fstat(fd).st_size
            return os.pread(fd, size, 0)

    def load(self, obj: Any, context: Any, raw: bytes) -> None:
        """Load ``raw`` into the SEAL object ``obj`` (SEAL validates it against ``context``)."""
        with self._memfd() as (fd, path):
            os.ftruncate(fd, len(raw))
            view = memoryview(raw)
            done = 0
            while done < len(raw):
                done += os.pwrite(fd, view[done:], done)
            try:
                obj.load(context, path)
            except (RuntimeError, ValueError) as exc:
                raise SnniError(f"SEAL rejected an object: {exc}") from exc

    def after_fork(self) -> None:
        """In a forked child, before any call: stop using the parent's memfds. A
        memfd inherited over fork is the same file in both processes, so sessions
        forked from one model host would read and write each other's bytes. Only
        our descriptors close (no truncation: that would empty the parent's)."""
        self._lock = threading.Lock()
        _close_all(self._fds)
        self._free.clear()

    def close(self) -> None:
        """Release the memory now (idempotent). A call still running keeps its
        memfd open until it returns."""
        with self._lock:
            self._closed = True
            for fd, _path in self._free:
                self._fds.remove(fd)
                os.close(fd)
            self._free.clear()
