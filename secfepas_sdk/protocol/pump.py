"""The one receive loop both parties run during an inference.

``next_event`` → reassemble DATA chunks into SNNI messages → hand each to the
caller's ``feed``, until the peer sends something else. An ``Error`` from the
peer becomes :class:`~secfepas_sdk.errors.PeerError`; everything else the
connection's rules have already checked.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from secfepas_sdk.errors import PeerError
from secfepas_sdk.protocol.events import Data, Error, Event
from secfepas_sdk.protocol.messages import MessageAssembler
from secfepas_sdk.protocol.transport import FramedStream

__all__ = ["MessagePump", "peer_error"]


def peer_error(event: Error, who: str) -> PeerError:
    """The exception for an Error frame from ``who`` (the peer's text is bounded by the schema)."""
    return PeerError(f"{who} ended the session ({event.code}): {event.message}", event.code)


class MessagePump:
    """Moves one inference's SNNI messages from the stream to ``feed``."""

    def __init__(
        self, stream: FramedStream, *, max_message: int, frame_timeout: float, peer: str
    ) -> None:
        self.stream = stream
        self.frame_timeout = frame_timeout
        self.peer = peer
        self.chunks = 0  # DATA frames received so far
        self._assembler = MessageAssembler(max_message)

    async def run(self, feed: Callable[[bytes], Awaitable[None]]) -> Event:
        """Feed every complete message; return the first event that is not DATA."""
        while True:
            event = await self.stream.next_event(frame_timeout=self.frame_timeout)
            if isinstance(event, Error):
                raise peer_error(event, self.peer)
            if not isinstance(event, Data):
                return event
            self.chunks += 1
            message = self._assembler.add(event)
            if message is not None:
                await feed(message)
