"""Worker-process side of a session: the edge's half of secure inference.

Runs in the session's own process (forked by :mod:`.workers`), never on the
event loop. It talks to its session only through one end of a socketpair (see
:mod:`.worker_link`): SNNI
messages arrive and leave as DATA frames that the session forwards to and from
the camera's TLS stream. Who holds what: this process holds the model weights
and its own shares; it never sees pixels or results.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
from pathlib import Path
from typing import TYPE_CHECKING

from secfepas_sdk.edge import worker_link
from secfepas_sdk.errors import PeerDataError
from secfepas_sdk.protocol.events import OT_EXTENSIONS
from secfepas_sdk.protocol.transport import read_exact
from secfepas_sdk.snni.channel import Channel, ChannelError

if TYPE_CHECKING:  # imported in the worker process only
    from secfepas_sdk.edge.he_pool import HePool
    from secfepas_sdk.snni.runtime import ServerRuntime

__all__ = ["SessionChannel", "ignore_interrupts", "load_runtime", "reason", "serve_session"]


class SessionChannel(Channel):
    """Channel over the worker's end of the socketpair (blocking, with a timeout)."""

    def __init__(self, sock: socket.socket, *, timeout_s: float, max_message: int) -> None:
        super().__init__(max_message=max_message)
        sock.settimeout(timeout_s)
        self._sock = sock

    def write(self, tag: bytes, payload: bytes | memoryview = b"") -> None:
        try:
            self._sock.sendall(worker_link.HEADER.pack(tag, len(payload)))
            if payload:
                self._sock.sendall(payload)
        except OSError as exc:
            raise ChannelError(f"session link closed: {exc}") from exc

    def _read_exact(self, n: int) -> bytes:
        return read_exact(
            self._sock,
            n,
            closed="the session ended (camera gone or server stopping)",
            failed="session link failed",
        )

    def read_frame(self, max_bytes: int) -> tuple[bytes, bytes]:
        tag, length = worker_link.HEADER.unpack(self._read_exact(worker_link.HEADER.size))
        if tag not in worker_link.TAGS or length > max_bytes:
            raise ChannelError(f"bad worker-link frame (tag {tag!r}, {length} bytes)")
        return tag, self._read_exact(length)

    def _send_message(self, payload: bytes) -> None:
        view = memoryview(payload)
        step = worker_link.CHUNK
        for offset in range(0, max(len(view), 1), step):
            last = offset + step >= len(view)
            self.write(worker_link.DATA if last else worker_link.MORE, view[offset : offset + step])

    def _flush(self) -> None:
        return None

    def _recv_message(self, max_bytes: int) -> bytes:
        """One camera message, refused as soon as it outgrows ``max_bytes`` (the size
        this protocol step allows, from the plan), before the excess is read."""
        parts: list[bytes] = []
        size = 0
        while True:
            tag, length = worker_link.HEADER.unpack(self._read_exact(worker_link.HEADER.size))
            if tag not in (worker_link.MORE, worker_link.DATA):
                raise ChannelError("the session ended in the middle of an inference")
            if size + length > max_bytes:
                raise PeerDataError(
                    f"the camera's message exceeds the {max_bytes} bytes this step allows"
                )
            parts.append(self._read_exact(length))
            size += length
            if tag == worker_link.DATA:
                return b"".join(parts)

    def close(self) -> None:
        self._sock.close()


def ignore_interrupts() -> None:
    """The model host and its session processes ignore SIGINT.

    A terminal's Ctrl-C reaches the whole foreground process group. Only the
    main process acts on it, with the graceful stop (idle sessions get Close,
    in-flight inferences finish within the grace period); a worker interrupted
    mid-inference would instead cut its session with a traceback.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def load_runtime(model_path: str, he_cache_bytes: int) -> ServerRuntime:
    """The model's ServerRuntime, weights verified and encoded (done once per model,
    in the process that later forks one child per session)."""
    from secfepas_sdk.models.package import load_private
    from secfepas_sdk.snni.runtime import ServerRuntime

    private = load_private(Path(model_path))  # verifies the hashes again
    return ServerRuntime(private.plan, private.weights, cache_bytes=he_cache_bytes)


def serve_session(
    sock: socket.socket,
    runtime: ServerRuntime | str,
    timeout_s: float,
    max_message: int,
    he_workers: int = 1,
    *,
    ot_extension: str = OT_EXTENSIONS[0],
) -> str:
    """Serve one camera session's inferences until told to quit; returns the outcome.

    Runs in the session's own process. ``runtime`` is the model (or the reason it
    could not be loaded); ``ot_extension`` is the one the session's suite names.
    With ``he_workers`` > 1 the HE layers are split across that many block processes,
    forked after the session's setup (:mod:`.he_pool`).
    Failures are reported to the session as a FAIL frame naming only the error type
    and message (never data); refused camera data (PeerDataError) as a REFUSED
    frame; a dead block process as LOST.
    """
    from secfepas_sdk.edge.he_pool import HeWorkerLost, start_pool

    chan = SessionChannel(sock, timeout_s=timeout_s, max_message=max_message)
    pool: HePool | None = None
    try:
        if isinstance(runtime, str):
            chan.write(worker_link.FAIL, runtime.encode("utf-8", "replace")[:300])
            return "load_failed"
        chan.write(worker_link.READY, str(os.getpid()).encode())
        while True:
            tag, payload = chan.read_frame(16)
            if tag == worker_link.QUIT:
                return "closed"
            if tag != worker_link.BEGIN:
                raise ChannelError(f"unexpected worker-link frame {tag!r} between inferences")
            try:
                if payload == b"\x01":
                    runtime.setup(chan, ot_extension=ot_extension)
                    if pool is not None:
                        pool.close()
                    pool = start_pool(
                        runtime.he, he_workers, close_in_child=[sock.fileno()], timeout_s=timeout_s
                    )
                runtime.infer(chan)
            except PeerDataError as exc:  # refused: the camera is told why (bad_message)
                with contextlib.suppress(ChannelError):
                    chan.write(worker_link.REFUSED, str(exc)[:300].encode("utf-8", "replace"))
                return "refused"
            except HeWorkerLost as exc:
                with contextlib.suppress(ChannelError):
                    chan.write(worker_link.LOST, reason(exc))
                return "failed"
            except Exception as exc:  # the camera's data broke the computation, or it left
                with contextlib.suppress(ChannelError):
                    chan.write(worker_link.FAIL, reason(exc))
                return "failed"
            chan.write(worker_link.END)
    except ChannelError:
        return "aborted"
    finally:
        if pool is not None:
            pool.close()
        chan.close()


def reason(exc: BaseException) -> bytes:
    return f"{type(exc).__name__}: {exc}"[:300].encode("utf-8", "replace")
