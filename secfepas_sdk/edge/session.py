"""One camera session on the edge: forward SNNI messages between TLS and a worker.

The event loop only moves bytes: DATA frames from the camera are reassembled
into SNNI messages and written to the worker's socketpair; the worker's
messages are split into DATA frames for the camera. All crypto happens in the
worker process (:mod:`.worker`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from secfepas_sdk.edge import worker_link
from secfepas_sdk.edge.budget import PrivacyBudgets
from secfepas_sdk.edge.metrics import EdgeMetrics
from secfepas_sdk.edge.registry import RegisteredModel
from secfepas_sdk.edge.settings import EdgeSettings
from secfepas_sdk.edge.workers import SessionProcess, WorkerHost, WorkerStartError
from secfepas_sdk.errors import LocalProtocolError, SecfepasError
from secfepas_sdk.protocol.events import (
    Close,
    Data,
    Error,
    InferenceBegin,
    InferenceEnd,
    suite_ot_extension,
)
from secfepas_sdk.protocol.messages import split_message
from secfepas_sdk.protocol.pump import peer_error
from secfepas_sdk.protocol.transport import FramedStream

__all__ = ["EdgeSession", "WorkerFailed", "settle"]

log = logging.getLogger(__name__)


class WorkerFailed(SecfepasError):
    """The worker could not load the model or compute; code says which."""

    def __init__(self, message: str, code: str, *, public: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.public = public  # our own text about the camera's data: the camera may see it


@dataclass(slots=True)
class _WorkerLink:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    max_message: int

    async def read(self) -> tuple[bytes, bytes]:
        try:
            head = await self.reader.readexactly(worker_link.HEADER.size)
            tag, length = worker_link.HEADER.unpack(head)
            if tag not in worker_link.TAGS or length > self.max_message:
                raise WorkerFailed("worker sent a malformed worker-link frame", "internal")
            return tag, await self.reader.readexactly(length)
        except (asyncio.IncompleteReadError, OSError) as exc:
            raise WorkerFailed("the worker process ended unexpectedly", "internal") from exc

    async def write(self, tag: bytes, payload: bytes = b"") -> None:
        self.writer.write(worker_link.frame(tag, payload))
        try:
            await self.writer.drain()
        except OSError as exc:
            raise WorkerFailed("the worker process ended unexpectedly", "internal") from exc


class EdgeSession:
    """Runs one admitted session: worker start, ServerHello, then inferences."""

    def __init__(
        self,
        *,
        stream: FramedStream,
        model: RegisteredModel,
        version: int,
        suite: str,
        session_id: str,
        settings: EdgeSettings,
        workers: WorkerHost,
        metrics: EdgeMetrics,
        stop_requested: asyncio.Event,
        budgets: PrivacyBudgets | None = None,
    ) -> None:
        self.stream = stream
        self.model = model
        self.version = version
        self.suite = suite
        self.session_id = session_id
        self.settings = settings
        self.workers = workers
        self._worker: SessionProcess | None = None
        self.metrics = metrics
        self.stop_requested = stop_requested
        self.budgets = budgets
        self.inferences = 0
        self.worker_pid: int | None = None

    async def run(self, send_hello: Callable[[], Awaitable[None]]) -> None:
        s = self.settings
        try:
            worker = await self.workers.spawn(
                str(self.model.path),
                timeout_s=s.inference_timeout_s,
                max_message=s.max_message,
                ot_extension=suite_ot_extension(self.suite),
            )
        except WorkerStartError as exc:
            raise WorkerFailed(str(exc), "internal") from exc
        self._worker = worker
        self.worker_pid = worker.pid
        try:
            reader, writer = await asyncio.open_unix_connection(sock=worker.sock, limit=1 << 20)
        except OSError as exc:
            worker.kill()
            worker.close()
            raise WorkerFailed("cannot talk to the session's worker", "internal") from exc
        link = _WorkerLink(reader, writer, worker_link.CHUNK)  # the worker sends chunks
        try:
            try:
                async with asyncio.timeout(s.inference_timeout_s):
                    tag, payload = await link.read()
            except TimeoutError:
                raise WorkerFailed("the worker process did not start in time", "internal") from None
            if tag == worker_link.FAIL:
                raise WorkerFailed(f"model could not be loaded: {payload.decode()}", "internal")
            if tag != worker_link.READY:
                raise WorkerFailed("worker did not start properly", "internal")
            await send_hello()
            await self._serve(link)
        finally:
            writer.close()
            await self._reap(worker)

    async def _reap(self, worker: SessionProcess) -> None:
        """Wait for the worker to end (it sees the closed link), killing it if stuck."""
        # Its HE scratch is anonymous memory (snni.he.scratch): nothing to clean up.
        try:
            if not await worker.wait(self.settings.message_timeout_s):
                self.kill_worker()
                await worker.wait(5.0)
            log.debug("session %s worker pid %d ended", self.session_id, worker.pid)
        finally:
            worker.close()

    def kill_worker(self) -> None:
        if self._worker is not None:
            log.warning("session %s: killing worker pid %d", self.session_id, self._worker.pid)
            self._worker.kill()

    async def _next_or_stop(self) -> object | None:
        """The camera's next event, or None when the server is stopping."""
        next_event = asyncio.ensure_future(
            self.stream.next_event(
                self.settings.idle_timeout_s, frame_timeout=self.settings.message_timeout_s
            )
        )
        stop = asyncio.ensure_future(self.stop_requested.wait())
        try:
            await asyncio.wait({next_event, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
        if next_event.done():
            return next_event.result()
        next_event.cancel()
        await asyncio.gather(next_event, return_exceptions=True)
        return None

    async def _serve(self, link: _WorkerLink) -> None:
        while True:
            event = await self._next_or_stop()
            if event is None:
                await self.stream.send(Close(reason="edge shutting down"))
                await link.write(worker_link.QUIT)
                return
            if isinstance(event, Close):
                await link.write(worker_link.QUIT)
                return
            if isinstance(event, Error):
                raise peer_error(event, "the camera")
            # The connection admits nothing else here, and checked the setup flag.
            assert isinstance(event, InferenceBegin)
            await self._inference(link, event)

    async def _inference(self, link: _WorkerLink, begin: InferenceBegin) -> None:
        s = self.settings
        start = time.monotonic()
        done_before = self.inferences
        if self.budgets is not None:  # counted before any reply can leave
            self.budgets.begin(self.model.model_id)
        await link.write(worker_link.BEGIN, b"\x01" if begin.setup else b"\x00")

        async def camera_to_worker() -> None:
            # Each DATA frame goes on as it arrives: no message is joined on the loop.
            while True:
                event = await self.stream.next_event(frame_timeout=s.message_timeout_s)
                if isinstance(event, Error):
                    raise peer_error(event, "the camera")
                # The table lets the camera send only DATA (or Error) while inferring.
                assert isinstance(event, Data)
                tag = worker_link.MORE if event.more else worker_link.DATA
                await link.write(tag, event.payload)

        max_data = self.stream.conn.limits.max_data

        async def worker_to_camera() -> None:
            while True:
                tag, payload = await link.read()
                if tag in (worker_link.DATA, worker_link.MORE):
                    await self.stream.send(*_frames(payload, tag == worker_link.MORE, max_data))
                elif tag == worker_link.END:
                    # Counted before the camera can see the end (metrics never lag it).
                    elapsed = time.monotonic() - start
                    self.inferences += 1
                    self.metrics.inferences["ok"] += 1
                    self.metrics.observe_latency(elapsed)
                    await self.stream.send(InferenceEnd(seq=begin.seq))
                    return
                elif tag == worker_link.FAIL:
                    raise WorkerFailed(payload.decode("utf-8", "replace"), "inference_failed")
                elif tag == worker_link.REFUSED:
                    text = payload.decode("utf-8", "replace")
                    raise WorkerFailed(text, "bad_message", public=True)
                elif tag == worker_link.LOST:  # the edge's fault, as a dead worker is
                    raise WorkerFailed(payload.decode("utf-8", "replace"), "internal")
                else:
                    raise WorkerFailed(f"unexpected worker-link frame {tag!r}", "internal")

        up = asyncio.ensure_future(camera_to_worker())
        down = asyncio.ensure_future(worker_to_camera())
        try:
            async with asyncio.timeout(s.inference_timeout_s):
                await asyncio.wait({up, down}, return_when=asyncio.FIRST_COMPLETED)
            settle(up, down)
        except TimeoutError:
            self.metrics.inferences["timeout"] += 1
            raise WorkerFailed(f"inference exceeded {s.inference_timeout_s} s", "timeout") from None
        except BaseException:
            if self.inferences == done_before:  # not yet counted as ok
                self.metrics.inferences["failed"] += 1
            raise
        finally:
            for task in (up, down):
                task.cancel()
            await asyncio.gather(up, down, return_exceptions=True)
        elapsed = time.monotonic() - start
        log.info("session %s inference %d done in %.2f s", self.session_id, begin.seq, elapsed)


def settle(camera_to_worker: asyncio.Future[None], worker_to_camera: asyncio.Future[None]) -> None:
    """Raise how an inference's two directions ended (at least one has), or return.

    When both wake in one loop turn, one error is the cause and the other its
    consequence. The worker's verdict (a refusal, a failure) comes first: the camera's
    direction then fails only because the worker has gone. But once the camera's stream
    has failed its protocol (an EOF mid-inference, bad bytes), the worker's next frame
    cannot be sent (LocalProtocolError): then the camera's error is the cause. Raising
    that consequence left the cut session uncounted.
    """
    if worker_to_camera.done():
        error = None if worker_to_camera.cancelled() else worker_to_camera.exception()
        if not (isinstance(error, LocalProtocolError) and camera_to_worker.done()):
            worker_to_camera.result()
            return
    camera_to_worker.result()  # it only ends by raising


def _frames(chunk: bytes, more: bool, max_data: int) -> list[Data]:
    """DATA frames for one chunk of a worker message; ``more``: the message goes on."""
    frames = split_message(chunk, max_data)
    if more:
        frames[-1] = Data(payload=frames[-1].payload, more=True)
    return frames
