"""The sans-IO protocol state machine (one object per side of one session).

Bytes in: :meth:`Connection.receive_data`; events out: :meth:`next_event`
(an event, or ``NEED_DATA``). Events in: :meth:`send`, which returns the
bytes to write. No I/O happens here, so tests drive two peers in memory.

Each side has one transition table: ``(state, direction, frame type) -> new
state``. A pair the table lacks is a ``RemoteProtocolError("wrong_state")``
when the peer caused it and a ``LocalProtocolError`` when our caller did.
``Error`` is accepted in every live state and ends the session.
"""

from __future__ import annotations

import enum
from typing import Final

from pydantic import ValidationError

from secfepas_sdk.errors import LocalProtocolError, RemoteProtocolError
from secfepas_sdk.protocol.events import (
    ConnectionClosed,
    ControlEvent,
    Data,
    Event,
    decode_control,
    encode_control,
)
from secfepas_sdk.protocol.frames import (
    FLAG_MORE,
    HEADER_SIZE,
    FrameHeader,
    FrameLimits,
    FrameType,
    encode_frame,
    parse_header,
)

__all__ = ["NEED_DATA", "Connection", "Direction", "NeedData", "Role", "State"]


class Role(enum.Enum):
    CLIENT = "client"  # the camera
    SERVER = "server"  # the edge


class State(enum.Enum):
    START = "start"
    AWAIT_SERVER_HELLO = "await_server_hello"  # client sent its hello
    HELLO_RECEIVED = "hello_received"  # server got the hello, owes an answer
    READY = "ready"  # between inferences
    INFERRING = "inferring"
    CLOSED = "closed"  # orderly end (Close or Error sent/received)
    FAILED = "failed"  # the peer broke the protocol


class Direction(enum.Enum):
    SEND = "send"
    RECEIVE = "receive"


class NeedData:
    """Sentinel type: feed more bytes with receive_data()."""

    _instance: NeedData | None = None

    def __repr__(self) -> str:
        return "NEED_DATA"


NEED_DATA: Final = NeedData()

S, D, T = State, Direction, FrameType
_Table = dict[tuple[State, Direction, FrameType], State]

CLIENT_TABLE: Final[_Table] = {
    (S.START, D.SEND, T.CLIENT_HELLO): S.AWAIT_SERVER_HELLO,
    (S.AWAIT_SERVER_HELLO, D.RECEIVE, T.SERVER_HELLO): S.READY,
    (S.READY, D.SEND, T.INFERENCE_BEGIN): S.INFERRING,
    (S.INFERRING, D.SEND, T.DATA): S.INFERRING,
    (S.INFERRING, D.RECEIVE, T.DATA): S.INFERRING,
    (S.INFERRING, D.RECEIVE, T.INFERENCE_END): S.READY,
    (S.READY, D.SEND, T.CLOSE): S.CLOSED,
    (S.READY, D.RECEIVE, T.CLOSE): S.CLOSED,
    # The edge may close while our InferenceBegin is in flight (graceful stop).
    (S.INFERRING, D.RECEIVE, T.CLOSE): S.CLOSED,
}

SERVER_TABLE: Final[_Table] = {
    (S.START, D.RECEIVE, T.CLIENT_HELLO): S.HELLO_RECEIVED,
    (S.HELLO_RECEIVED, D.SEND, T.SERVER_HELLO): S.READY,
    (S.READY, D.RECEIVE, T.INFERENCE_BEGIN): S.INFERRING,
    (S.INFERRING, D.RECEIVE, T.DATA): S.INFERRING,
    (S.INFERRING, D.SEND, T.DATA): S.INFERRING,
    (S.INFERRING, D.SEND, T.INFERENCE_END): S.READY,
    (S.READY, D.SEND, T.CLOSE): S.CLOSED,
    (S.READY, D.RECEIVE, T.CLOSE): S.CLOSED,
}

_TABLES: Final = {Role.CLIENT: CLIENT_TABLE, Role.SERVER: SERVER_TABLE}
_LIVE: Final = frozenset(s for s in State if s not in (S.CLOSED, S.FAILED))


class Connection:
    """One side of one protocol session; holds no socket."""

    def __init__(self, role: Role, *, limits: FrameLimits | None = None) -> None:
        self.role = role
        self.limits = limits or FrameLimits()
        self._table = _TABLES[role]
        self._state = State.START
        self._buffer = bytearray()
        self._header: FrameHeader | None = None
        self._eof = False
        self._error: RemoteProtocolError | None = None
        self._sent_terminal = False
        self.bytes_received = 0
        self.bytes_sent = 0

    @property
    def state(self) -> State:
        return self._state

    @property
    def partial(self) -> bool:
        """True while part of a frame has arrived (the rest is owed by the peer)."""
        return bool(self._buffer) or self._header is not None

    @property
    def max_buffer(self) -> int:
        """Bytes we agree to hold: one largest frame plus one read chunk of slack."""
        return HEADER_SIZE + max(self.limits.max_control, self.limits.max_data) + (1 << 20)

    # -- incoming ----------------------------------------------------------
    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        """Feed bytes read from the peer; ``b""`` means the peer closed the stream.

        Call next_event() until NEED_DATA before feeding more: the buffer is
        bounded and over-feeding it is our caller's bug (LocalProtocolError).
        """
        if self._eof and data:
            raise LocalProtocolError("receive_data() after end of stream", "local_misuse")
        if not data:
            self._eof = True
            return
        if len(self._buffer) + len(data) > self.max_buffer:
            raise LocalProtocolError(
                "receive_data() called without draining next_event()", "local_misuse"
            )
        self._buffer += data
        self.bytes_received += len(data)

    def next_event(self) -> Event | NeedData:
        """The next complete event, NEED_DATA, or RemoteProtocolError (sticky)."""
        if self._error is not None:
            raise self._error
        try:
            return self._next_event()
        except RemoteProtocolError as exc:
            self._fail(exc)
            raise

    def _fail(self, exc: RemoteProtocolError) -> None:
        self._error = exc
        self._state = State.FAILED
        self._buffer.clear()
        self._header = None

    def _next_event(self) -> Event | NeedData:
        if self._state is State.CLOSED:
            # After an orderly end nothing further is interpreted; stray bytes
            # that crossed our Close on the wire are discarded.
            self._buffer.clear()
            return ConnectionClosed() if self._eof else NEED_DATA
        if self._header is None:
            if len(self._buffer) < HEADER_SIZE:
                return self._need_more()
            self._header = parse_header(self._buffer, self.limits)
            self._check_transition(self._header.frame_type)
        header = self._header
        end = HEADER_SIZE + header.length
        if len(self._buffer) < end:
            return self._need_more()
        payload = bytes(self._buffer[HEADER_SIZE:end])
        del self._buffer[:end]
        self._header = None
        event = self._decode(header, payload)
        self._advance(Direction.RECEIVE, header.frame_type)
        return event

    def _need_more(self) -> NeedData:
        if self._eof:
            if self._buffer or self._header is not None:
                raise RemoteProtocolError("the peer closed the stream mid-frame", "unexpected_eof")
            raise RemoteProtocolError(
                f"the peer closed the stream in state {self._state.value}", "unexpected_eof"
            )
        return NEED_DATA

    def _check_transition(self, frame_type: FrameType) -> None:
        if frame_type is FrameType.ERROR:
            return
        if (self._state, Direction.RECEIVE, frame_type) not in self._table:
            raise RemoteProtocolError(
                f"{frame_type.name} is not allowed in state {self._state.value}", "wrong_state"
            )

    def _decode(self, header: FrameHeader, payload: bytes) -> Event:
        if header.frame_type is FrameType.DATA:
            return Data(payload=payload, more=bool(header.flags & FLAG_MORE))
        try:
            return decode_control(header.frame_type, payload)
        except ValidationError as exc:
            bad_json = any(e["type"] == "json_invalid" for e in exc.errors())
            code = "bad_json" if bad_json else "bad_message"
            raise RemoteProtocolError(
                f"invalid {header.frame_type.name} payload: {_first_line(exc)}", code
            ) from None
        except ValueError as exc:
            code = "bad_message"
            raise RemoteProtocolError(
                f"invalid {header.frame_type.name} payload: {_first_line(exc)}", code
            ) from None

    # -- outgoing ----------------------------------------------------------
    def send(self, event: ControlEvent | Data) -> bytes:
        """Bytes that put ``event`` on the wire; LocalProtocolError if not allowed now."""
        frame_type = event.frame_type
        if self._sent_terminal:
            raise LocalProtocolError("the session is over: nothing more may be sent", "closed")
        if frame_type is FrameType.ERROR:
            # Allowed in any state (also after the peer failed us) so the peer learns why.
            payload = encode_control(event)  # type: ignore[arg-type]
            out = encode_frame(frame_type, payload, limits=self.limits)
            self._sent_terminal = True
            if self._state in _LIVE:
                self._state = State.CLOSED
            self.bytes_sent += len(out)
            return out
        if (self._state, Direction.SEND, frame_type) not in self._table:
            raise LocalProtocolError(
                f"cannot send {frame_type.name} in state {self._state.value}", "wrong_state"
            )
        if isinstance(event, Data):
            out = encode_frame(
                frame_type, event.payload, flags=FLAG_MORE if event.more else 0, limits=self.limits
            )
        else:
            try:
                payload = encode_control(event)
            except ValueError as exc:
                raise LocalProtocolError(f"cannot encode {frame_type.name}: {exc}") from None
            out = encode_frame(frame_type, payload, limits=self.limits)
        self._advance(Direction.SEND, frame_type)
        if frame_type is FrameType.CLOSE:
            self._sent_terminal = True
        self.bytes_sent += len(out)
        return out

    def _advance(self, direction: Direction, frame_type: FrameType) -> None:
        if frame_type is FrameType.ERROR:
            self._state = State.CLOSED
            return
        self._state = self._table[(self._state, direction, frame_type)]


def _first_line(exc: BaseException) -> str:
    text = str(exc).splitlines()
    return " ".join(text[:3])[:300]
