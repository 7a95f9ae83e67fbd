"""The bridge between the event loop and the SNNI client runtime for one inference.

The runtime is synchronous and CPU-bound, so it runs in a worker thread and
talks through a :class:`ThreadChannel`; the loop sends its messages as DATA
frames and pumps the edge's DATA back into the channel until InferenceEnd.
Who holds what: the thread holds the image, the HE secret key and the shares;
only ciphertexts and uniformly random shares go through the channel.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from secfepas_sdk.errors import (
    ConnectionLostError,
    ErrorCode,
    PeerError,
    ProtocolError,
    SecfepasError,
    SessionError,
)
from secfepas_sdk.protocol.events import Close, Error, InferenceBegin, InferenceEnd
from secfepas_sdk.protocol.pump import MessagePump
from secfepas_sdk.protocol.transport import FramedStream, ThreadChannel

if TYPE_CHECKING:
    from secfepas_sdk.snni.channel import ChannelStats
    from secfepas_sdk.snni.runtime import ClientRuntime

__all__ = ["InferenceBridge"]


class InferenceBridge:
    """Runs one inference of ``runtime`` over ``stream``; afterwards ``edge_spoke``
    says whether any DATA from the edge arrived (a stale session sends none), and
    ``stats`` holds the inference's SNNI traffic counters (bytes, rounds, per label)."""

    def __init__(
        self,
        stream: FramedStream,
        runtime: ClientRuntime,
        *,
        inference_s: float,
        frame_s: float,
        max_message: int,
        ot_extension: str | None = None,
    ) -> None:
        self.stream = stream
        self.runtime = runtime
        self.ot_extension = ot_extension  # the session's suite's (None: the library default)
        self.inference_s = inference_s
        self.frame_s = frame_s
        self.max_message = max_message
        self._pump = MessagePump(
            stream, max_message=max_message, frame_timeout=frame_s, peer="the edge"
        )
        self.stats: ChannelStats | None = None

    @property
    def edge_spoke(self) -> bool:
        return self._pump.chunks > 0

    async def run(self, x: NDArray[np.float32], *, seq: int, setup: bool) -> NDArray[np.float64]:
        """The logits for ``x``. On failure the session is unusable, and the error is
        cancellation, a protocol or session error, a timeout (ConnectionLostError
        ``timeout``) or our computation's failure (ConnectionLostError
        ``inference_failed``); the edge has been told why when the cause is ours."""
        stream, runtime = self.stream, self.runtime
        loop = asyncio.get_running_loop()
        chan = ThreadChannel(
            loop, stream.send_message, timeout_s=self.inference_s, max_message=self.max_message
        )
        self.stats = chan.stats

        def compute() -> NDArray[np.float64]:
            if setup:
                runtime.setup(chan, ot_extension=self.ot_extension)
            logits: NDArray[np.float64] = runtime.infer(chan, x)
            return logits

        await stream.send(InferenceBegin(seq=seq, setup=setup))
        work = asyncio.ensure_future(asyncio.to_thread(compute))
        receive = asyncio.ensure_future(_edge_to_thread(self._pump, chan))
        try:
            async with asyncio.timeout(self.inference_s):
                done, _ = await asyncio.wait({work, receive}, return_when=asyncio.FIRST_EXCEPTION)
                if receive in done and receive.exception() is not None:
                    raise receive.exception()  # type: ignore[misc]
                logits = await work
                await receive
        except BaseException as exc:
            chan.fail("inference aborted")
            receive.cancel()
            await asyncio.gather(receive, return_exceptions=True)
            # The thread's own failure (its channel failed) is a consequence of exc,
            # which is raised instead: take it, whether the thread has ended already
            # or ends later, so that asyncio never reports it as never retrieved.
            work.add_done_callback(_take_outcome)
            if not work.done():
                # The thread stops at its next channel call (the channel has failed).
                with contextlib.suppress(BaseException):
                    async with asyncio.timeout(5.0):
                        await asyncio.shield(work)
            await _tell_edge(stream, exc)
            if isinstance(exc, TimeoutError):
                raise ConnectionLostError(
                    f"inference exceeded {self.inference_s} s", ErrorCode.TIMEOUT
                ) from None
            if _ours(exc):
                raise ConnectionLostError(
                    f"secure inference failed: {exc}", ErrorCode.INFERENCE_FAILED
                ) from exc
            raise
        return logits


async def _edge_to_thread(pump: MessagePump, chan: ThreadChannel) -> None:
    """Edge -> thread: SNNI messages until InferenceEnd (whose seq the connection checks)."""

    async def feed(message: bytes) -> None:
        chan.feed(message)

    try:
        end = await pump.run(feed)
        if isinstance(end, Close):
            raise PeerError(f"the edge closed the session: {end.reason}", ErrorCode.SHUTTING_DOWN)
        assert isinstance(end, InferenceEnd)  # the table allows nothing else
    except BaseException as exc:
        chan.fail(f"session ended: {exc}")
        raise


def _take_outcome(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()


def _ours(exc: BaseException) -> bool:
    """Did our own computation fail (not the edge, the network or the protocol)?"""
    return isinstance(exc, SecfepasError) and not isinstance(exc, (ProtocolError, SessionError))


async def _tell_edge(stream: FramedStream, exc: BaseException) -> None:
    """Say why we end the session, when the cause is on our side (best effort)."""
    if isinstance(exc, asyncio.CancelledError):
        error = Error(code=ErrorCode.CANCELLED, message="the camera cancelled the inference")
    elif isinstance(exc, TimeoutError):
        error = Error(code=ErrorCode.TIMEOUT, message="the camera's inference timeout expired")
    elif _ours(exc):
        error = Error(code=ErrorCode.INFERENCE_FAILED, message="the camera's computation failed")
    else:
        return  # the edge or the network ended it: nothing to tell
    with contextlib.suppress(ProtocolError, SessionError, TimeoutError):
        async with asyncio.timeout(1.0):
            await stream.send(error)
