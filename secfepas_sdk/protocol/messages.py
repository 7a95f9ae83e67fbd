"""SNNI messages <-> DATA frames: split on send, reassemble (bounded) on receive.

An SNNI message may exceed one frame; all chunks but the last carry MORE.
Pure functions, no I/O.
"""

from __future__ import annotations

from secfepas_sdk.errors import RemoteProtocolError
from secfepas_sdk.protocol.events import Data

__all__ = ["MessageAssembler", "split_message"]


def split_message(payload: bytes | bytearray | memoryview, max_chunk: int) -> list[Data]:
    """The DATA events carrying one message (an empty message is one empty frame)."""
    view = memoryview(payload)
    n = len(view)
    if n <= max_chunk:
        return [Data(payload=bytes(view))]
    starts = range(0, n, max_chunk)
    return [Data(payload=bytes(view[i : i + max_chunk]), more=i + max_chunk < n) for i in starts]


class MessageAssembler:
    """Collects DATA chunks into whole messages, refusing any above ``max_message``."""

    def __init__(self, max_message: int) -> None:
        self.max_message = max_message
        self._parts: list[bytes] = []
        self._size = 0

    @property
    def pending(self) -> bool:
        return bool(self._parts)

    def add(self, chunk: Data) -> bytes | None:
        """The complete message once its last chunk arrives, else None."""
        self._size += len(chunk.payload)
        if self._size > self.max_message:
            self._parts.clear()
            self._size = 0
            raise RemoteProtocolError(
                f"SNNI message exceeds the {self.max_message}-byte bound", "frame_too_large"
            )
        self._parts.append(chunk.payload)
        if chunk.more:
            return None
        message = b"".join(self._parts)
        self._parts.clear()
        self._size = 0
        return message
