"""One worker process per session, forked from a process that holds the models.

Why: a shared process pool breaks for everyone when one worker dies (OOM
killer, SEAL crash, SIGKILL). Here each admitted session gets a process of its
own, so a death ends that session only. The processes are forked from one
*model host* that loaded and encoded every model's weights once, so the weights
are shared copy-on-write instead of copied per session (issue 13: edge memory
bounded as cameras grow). The number of live session processes is bounded by
the server's session slots.

The host is started with ``spawn`` or ``forkserver`` (never forked from the
event loop's process, which has threads). It is single-threaded, and each child
replaces everything per-process that must not be shared: the PRG streams and
the HE scratch memfds (:meth:`ServerRuntime.after_fork`). If the host itself
dies, the next session starts a new one; running sessions are unaffected.

Who holds what: the host and its children hold the model weights; children hold
one session's shares. Nothing here sees pixels or results.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import multiprocessing
import os
import signal
import socket
import struct
from typing import TYPE_CHECKING, Any

from secfepas_sdk.edge.worker import ignore_interrupts, load_runtime, reason, serve_session
from secfepas_sdk.errors import SecfepasError
from secfepas_sdk.protocol.events import OT_EXTENSIONS

if TYPE_CHECKING:
    from multiprocessing.process import BaseProcess

    from secfepas_sdk.snni.runtime import ServerRuntime

__all__ = ["SessionProcess", "WorkerHost", "WorkerStartError"]

log = logging.getLogger(__name__)

_PID = struct.Struct("!Q")
_READY = b"ready"
_MAX_REQUEST = 8192


class WorkerStartError(SecfepasError):
    """No session process could be started (the model host is gone or broken)."""


def _host_main(
    control: socket.socket, model_paths: list[str], he_cache_bytes: int, he_workers: int
) -> None:
    """Model host: load every model once, then fork one child per session request."""
    ignore_interrupts()  # Ctrl-C is the server's to handle (children inherit it)
    runtimes: dict[str, ServerRuntime | str] = {}
    for path in model_paths:
        try:
            runtimes[path] = load_runtime(path, he_cache_bytes)
        except Exception as exc:  # reported to each session of that model
            runtimes[path] = reason(exc).decode("utf-8", "replace")
    gc.collect()
    gc.freeze()  # keep the collector from touching (and so copying) the shared pages
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the kernel reaps the children
    control.sendall(_READY)
    while True:
        try:
            msg, fds, _flags, _addr = socket.recv_fds(control, _MAX_REQUEST, 1)
        except OSError:
            return
        if not msg:
            return  # the server closed its end: stop
        if len(fds) != 1:
            for fd in fds:
                os.close(fd)
            control.sendall(_PID.pack(0))
            continue
        request: dict[str, Any] = json.loads(msg)
        pid = os.fork()
        if pid == 0:  # the session's process
            status = 0
            try:
                control.close()
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                runtime = runtimes.get(request["model"], "model not loaded by the host")
                if not isinstance(runtime, str):
                    runtime.after_fork()
                sock = socket.socket(fileno=fds[0])
                serve_session(
                    sock,
                    runtime,
                    request["timeout_s"],
                    request["max_message"],
                    he_workers,
                    ot_extension=request["ot_extension"],
                )
                if not isinstance(runtime, str):
                    runtime.close()
            except BaseException:  # never return into the host's loop
                status = 1
            finally:
                os._exit(status)
        os.close(fds[0])
        control.sendall(_PID.pack(pid))


class SessionProcess:
    """The loop's handle on one session's process: its link socket and its life."""

    def __init__(self, sock: socket.socket, pid: int) -> None:
        self.sock = sock
        self.pid = pid
        self._pidfd: int | None
        try:
            self._pidfd = os.pidfd_open(pid)
        except ProcessLookupError:
            self._pidfd = None  # already gone

    async def wait(self, timeout: float) -> bool:
        """True once the process has ended, False if it still runs after ``timeout``."""
        if self._pidfd is None:
            return True
        loop = asyncio.get_running_loop()
        ended = loop.create_future()
        loop.add_reader(self._pidfd, ended.set_result, None)
        try:
            async with asyncio.timeout(timeout):
                await ended
            return True
        except TimeoutError:
            return False
        finally:
            loop.remove_reader(self._pidfd)

    def kill(self) -> None:
        """SIGKILL through the pidfd (never hits a recycled pid)."""
        if self._pidfd is not None:
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(self._pidfd, signal.SIGKILL)

    def close(self) -> None:
        if self._pidfd is not None:
            os.close(self._pidfd)
            self._pidfd = None


class WorkerHost:
    """Loop side of the model host: start it, ask it for session processes."""

    def __init__(
        self,
        model_paths: list[str],
        *,
        start_method: str,
        load_timeout_s: float,
        he_cache_bytes: int,
        he_workers: int = 1,
    ) -> None:
        self._paths = model_paths
        self._he_cache_bytes = he_cache_bytes
        self._he_workers = he_workers  # block processes per session (he_pool)
        self._ctx = multiprocessing.get_context(start_method)
        self._load_timeout_s = load_timeout_s
        self._process: BaseProcess | None = None
        self._control: socket.socket | None = None
        self._lock = asyncio.Lock()
        self.restarts = 0

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    async def start(self) -> None:
        """Start the host and wait until it has loaded every model."""
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        process = self._ctx.Process(  # type: ignore[attr-defined]
            target=_host_main,
            args=(child, self._paths, self._he_cache_bytes, self._he_workers),
            name="secfepas-model-host",
            daemon=True,
        )
        process.start()
        child.close()
        parent.setblocking(False)
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self._load_timeout_s):
                ready = await loop.sock_recv(parent, 64)
        except (TimeoutError, OSError):
            ready = b""
        if ready != _READY:
            parent.close()
            process.kill()
            await asyncio.to_thread(process.join, 5.0)
            raise WorkerStartError("the model host did not start (it died or timed out)")
        self._process, self._control = process, parent
        log.info("model host pid %d ready (%d model(s) loaded)", process.pid, len(self._paths))

    async def spawn(
        self,
        model_path: str,
        *,
        timeout_s: float,
        max_message: int,
        ot_extension: str = OT_EXTENSIONS[0],
    ) -> SessionProcess:
        """A new process serving one session of ``model_path`` over a fresh socketpair,
        running the session's negotiated OT extension."""
        request = {
            "model": model_path,
            "timeout_s": timeout_s,
            "max_message": max_message,
            "ot_extension": ot_extension,
        }
        async with self._lock:
            try:
                return await self._spawn(request)
            except OSError:
                log.warning("model host gone; starting a new one")
            await self._restart()
            try:
                return await self._spawn(request)
            except OSError as exc:
                raise WorkerStartError(f"cannot start a session process: {exc}") from exc

    async def _spawn(self, request: dict[str, Any]) -> SessionProcess:
        if self._control is None:
            raise OSError("no model host")
        ours, theirs = socket.socketpair()
        try:
            socket.send_fds(self._control, [json.dumps(request).encode()], [theirs.fileno()])
        except OSError:
            ours.close()
            raise
        finally:
            theirs.close()
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(30.0):
                reply = await loop.sock_recv(self._control, _PID.size)
        except TimeoutError:
            reply = b""
        if len(reply) != _PID.size or _PID.unpack(reply)[0] == 0:
            ours.close()
            raise OSError("the model host did not answer")
        return SessionProcess(ours, _PID.unpack(reply)[0])

    async def _restart(self) -> None:
        await self.stop()
        self.restarts += 1
        await self.start()

    async def stop(self) -> None:
        """Stop the host (its session processes end when their links close)."""
        control, process = self._control, self._process
        self._control = self._process = None
        if control is not None:
            control.close()  # the host sees EOF and returns
        if process is not None:
            await asyncio.to_thread(process.join, 5.0)
            if process.is_alive():
                process.kill()
                await asyncio.to_thread(process.join, 5.0)
