"""Message channels between the two SNNI parties, with traffic accounting.

The engine only ever talks through :class:`Channel`: ``send`` queues one
message, ``flush`` pushes queued messages to the peer, ``recv`` returns the
next whole message. Every byte received is untrusted: ``recv`` enforces a
size bound and the typed helpers check exact lengths before any parsing.

Statistics: bytes each way and rounds, both also split by the current label
(set with :meth:`Channel.label`, e.g. ``"conv1/relu"``). A round is counted
each time a party that has sent something since it last received now waits
for the peer, i.e. a change of direction, the usual latency-bound measure.
"""

from __future__ import annotations

import abc
import queue
import threading
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np
from numpy.typing import NDArray

from secfepas_sdk.errors import SnniError

A = TypeVar("A")
B = TypeVar("B")

DEFAULT_MAX_MESSAGE = 1 << 31  # 2 GiB: above any single layer's traffic


class ChannelError(SnniError):
    """The peer closed, timed out, or sent a message of the wrong size."""


@dataclass(slots=True)
class LabelStats:
    bytes_sent: int = 0
    bytes_received: int = 0
    rounds: int = 0


@dataclass(slots=True)
class ChannelStats:
    """Traffic counters: totals plus per-label breakdown."""

    bytes_sent: int = 0
    bytes_received: int = 0
    rounds: int = 0
    messages_sent: int = 0
    by_label: dict[str, LabelStats] = field(default_factory=lambda: defaultdict(LabelStats))

    def as_dict(self) -> dict[str, object]:
        return {
            "bytes_sent": self.bytes_sent,
            "bytes_received": self.bytes_received,
            "rounds": self.rounds,
            "messages_sent": self.messages_sent,
            "by_label": {
                k: {
                    "bytes_sent": v.bytes_sent,
                    "bytes_received": v.bytes_received,
                    "rounds": v.rounds,
                }
                for k, v in self.by_label.items()
            },
        }


Buffer = bytes | bytearray | memoryview


class Channel(abc.ABC):
    """A reliable, ordered, message-oriented link to the other party."""

    def __init__(self, *, max_message: int = DEFAULT_MAX_MESSAGE) -> None:
        self.max_message = max_message
        self.stats = ChannelStats()
        self._label = "-"
        self._sent_since_recv = False

    # -- transport hooks ------------------------------------------------
    @abc.abstractmethod
    def _send_message(self, payload: bytes) -> None: ...

    @abc.abstractmethod
    def _flush(self) -> None: ...

    @abc.abstractmethod
    def _recv_message(self, max_bytes: int) -> bytes: ...

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release the transport. Idempotent."""

    # -- public API -------------------------------------------------------
    @contextmanager
    def label(self, name: str) -> Iterator[None]:
        """Attribute traffic inside the block to ``name`` (nesting joins with '/')."""
        previous = self._label
        self._label = name if previous == "-" else f"{previous}/{name}"
        try:
            yield
        finally:
            self._label = previous

    def send(self, data: Buffer | NDArray[np.generic]) -> None:
        """Queue one message. Arrays are sent as their raw C-order bytes."""
        payload = (
            np.ascontiguousarray(data).tobytes() if isinstance(data, np.ndarray) else bytes(data)
        )
        if len(payload) > self.max_message:
            raise ChannelError(
                f"message of {len(payload)} bytes exceeds the {self.max_message} bound"
            )
        self._send_message(payload)
        self.stats.bytes_sent += len(payload)
        self.stats.messages_sent += 1
        self.stats.by_label[self._label].bytes_sent += len(payload)
        self._sent_since_recv = True

    def flush(self) -> None:
        self._flush()

    @property
    def owes_round(self) -> bool:
        """True if this end has sent since it last received: its next ``recv`` is a
        round. False after a receive, so a peer's further messages in the same flight
        (say, the edge's output share after its last protocol message) cost none."""
        return self._sent_since_recv

    def recv(self, max_bytes: int | None = None) -> bytes:
        """Next whole message, at most ``max_bytes`` long (else ChannelError)."""
        bound = self.max_message if max_bytes is None else min(max_bytes, self.max_message)
        if self._sent_since_recv:
            self._flush()
            self.stats.rounds += 1
            self.stats.by_label[self._label].rounds += 1
            self._sent_since_recv = False
        payload = self._recv_message(bound)
        self.stats.bytes_received += len(payload)
        self.stats.by_label[self._label].bytes_received += len(payload)
        return payload

    def recv_exact(self, nbytes: int) -> bytes:
        payload = self.recv(nbytes)
        if len(payload) != nbytes:
            raise ChannelError(f"expected a {nbytes}-byte message, got {len(payload)} bytes")
        return payload

    def recv_array(
        self, dtype: np.dtype[np.generic] | type, shape: tuple[int, ...]
    ) -> NDArray[np.generic]:
        """Receive an array whose dtype and shape both parties know in advance."""
        dt = np.dtype(dtype)
        count = int(np.prod(shape, dtype=np.int64))
        raw = self.recv_exact(count * dt.itemsize)
        return np.frombuffer(raw, dtype=dt).reshape(shape).copy()

    def recv_uint64(self, shape: tuple[int, ...] | int) -> NDArray[np.uint64]:
        shp = (shape,) if isinstance(shape, int) else shape
        out: NDArray[np.uint64] = self.recv_array(np.uint64, shp)  # type: ignore[assignment]
        return out

    def __enter__(self) -> Channel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class EndOfChannel:
    """Put on an inbox queue when the peer closes or the link fails; it stays
    there, so every later ``recv`` fails with the same reason."""

    __slots__ = ("reason",)

    def __init__(self, reason: str = "the peer closed the channel") -> None:
        self.reason = reason


Inbox = queue.Queue[bytes | EndOfChannel]


def take_message(inbox: Inbox, *, timeout_s: float, max_bytes: int) -> bytes:
    """Next message from a queue-backed inbox, with the timeout and size bound."""
    try:
        item = inbox.get(timeout=timeout_s)
    except queue.Empty:
        raise ChannelError(f"no message from the peer within {timeout_s} s") from None
    if isinstance(item, EndOfChannel):
        inbox.put(item)
        raise ChannelError(item.reason)
    if len(item) > max_bytes:
        raise ChannelError(f"peer message of {len(item)} bytes exceeds the {max_bytes} bound")
    return item


class MemoryChannel(Channel):
    """One end of an in-process pair (for tests and single-process benchmarks)."""

    def __init__(
        self,
        outbox: Inbox,
        inbox: Inbox,
        *,
        timeout_s: float,
        max_message: int = DEFAULT_MAX_MESSAGE,
    ) -> None:
        super().__init__(max_message=max_message)
        self._outbox = outbox
        self._inbox = inbox
        self._timeout_s = timeout_s
        self._closed = False

    def _send_message(self, payload: bytes) -> None:
        if self._closed:
            raise ChannelError("channel is closed")
        self._outbox.put(payload)

    def _flush(self) -> None:
        return None

    def _recv_message(self, max_bytes: int) -> bytes:
        return take_message(self._inbox, timeout_s=self._timeout_s, max_bytes=max_bytes)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._outbox.put(EndOfChannel())


def memory_pair(*, timeout_s: float = 120.0) -> tuple[MemoryChannel, MemoryChannel]:
    """Two connected in-memory channel ends (client end first)."""
    a_to_b: Inbox = queue.Queue()
    b_to_a: Inbox = queue.Queue()
    return (
        MemoryChannel(a_to_b, b_to_a, timeout_s=timeout_s),
        MemoryChannel(b_to_a, a_to_b, timeout_s=timeout_s),
    )


def run_pair(
    client: Callable[[Channel], A],
    server: Callable[[Channel], B],
    *,
    timeout_s: float = 600.0,
) -> tuple[A, B]:
    """Run both parties in threads over an in-memory pair; return both results.

    If either party raises, its channel is closed (so the other fails fast
    instead of hanging) and the first exception is re-raised here.
    """
    ends = memory_pair(timeout_s=timeout_s)
    results: list[object] = [None, None]
    errors: list[BaseException] = []

    def run(index: int, fn: Callable[[Channel], object]) -> None:
        try:
            results[index] = fn(ends[index])
        except BaseException as exc:
            errors.append(exc)
            ends[index].close()

    threads = [
        threading.Thread(target=run, args=(0, client), name="snni-client"),
        threading.Thread(target=run, args=(1, server), name="snni-server"),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout_s)
    if errors:
        raise errors[0]
    if any(t.is_alive() for t in threads):
        raise ChannelError(f"parties did not finish within {timeout_s} s")
    return results[0], results[1]  # type: ignore[return-value]
