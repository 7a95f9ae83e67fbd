"""The sans-IO protocol state machine (one object per side of one session).

Bytes in: :meth:`Connection.receive_data`; events out: :meth:`next_event`
(an event, or ``NEED_DATA``). Events in: :meth:`send`, which returns the
bytes to write. No I/O happens here, so tests drive two peers in memory.

Every protocol rule lives here:

- one role-neutral table, ``(state, sender, frame type) -> new state``, from
  which each side's ``(state, direction, frame type)`` table is derived;
  ``Error`` is a row like any other (either sender, every live state);
- the hello negotiation: the edge picks the highest common version and the
  camera's first common suite; the camera accepts only a version and suite it
  offered;
- ``InferenceEnd`` names the inference that ``InferenceBegin`` started;
- with ``setup_once``, the first ``InferenceBegin`` of a session asks for the
  suite's setup and no later one does.

A frame the rules refuse is a ``RemoteProtocolError`` when the peer sent it
(``wrong_state`` for the table) and a ``LocalProtocolError`` when our caller
tried to send it.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Final

from pydantic import ValidationError

from secfepas_sdk.errors import (
    ErrorCode,
    LocalProtocolError,
    NegotiationError,
    ProtocolError,
    RemoteProtocolError,
)
from secfepas_sdk.protocol.events import (
    PROTOCOL_VERSIONS,
    SUITES,
    ClientHello,
    ConnectionClosed,
    ControlEvent,
    Data,
    Event,
    InferenceBegin,
    InferenceEnd,
    ServerHello,
    decode_control,
    encode_control,
    first_lines,
)
from secfepas_sdk.protocol.framing import (
    FLAG_MORE,
    HEADER_SIZE,
    FrameHeader,
    FrameLimits,
    FrameType,
    encode_frame,
    parse_header,
)

__all__ = [
    "NEED_DATA",
    "SESSION_TABLE",
    "Connection",
    "Direction",
    "NeedData",
    "Role",
    "State",
    "role_table",
]


class Role(enum.Enum):
    CLIENT = "client"  # the camera
    SERVER = "server"  # the edge


class State(enum.Enum):
    START = "start"
    AWAIT_SERVER_HELLO = "await_server_hello"  # the camera's hello is out, the answer owed
    READY = "ready"  # between inferences
    INFERRING = "inferring"
    CLOSED = "closed"  # orderly end (Close or Error sent/received)
    FAILED = "failed"  # the peer broke the protocol


class Direction(enum.Enum):
    SEND = "send"
    RECEIVE = "receive"


class NeedData:
    """Sentinel type: feed more bytes with receive_data()."""

    def __repr__(self) -> str:
        return "NEED_DATA"


NEED_DATA: Final = NeedData()

S, T = State, FrameType
C, V = Role.CLIENT, Role.SERVER
_LIVE: Final = (S.START, S.AWAIT_SERVER_HELLO, S.READY, S.INFERRING)

SESSION_TABLE: Final[Mapping[tuple[State, Role, FrameType], State]] = {
    (S.START, C, T.CLIENT_HELLO): S.AWAIT_SERVER_HELLO,
    (S.AWAIT_SERVER_HELLO, V, T.SERVER_HELLO): S.READY,
    (S.READY, C, T.INFERENCE_BEGIN): S.INFERRING,
    (S.INFERRING, C, T.DATA): S.INFERRING,
    (S.INFERRING, V, T.DATA): S.INFERRING,
    (S.INFERRING, V, T.INFERENCE_END): S.READY,
    (S.READY, C, T.CLOSE): S.CLOSED,
    (S.READY, V, T.CLOSE): S.CLOSED,
    **{(state, sender, T.ERROR): S.CLOSED for state in _LIVE for sender in Role},
}
"""Who may send what in which state of the session (both sides share this view)."""

_CROSSED: Final[Mapping[tuple[State, Role, FrameType], State]] = {
    # The edge closed in READY while the camera's InferenceBegin was in flight:
    # the camera sees the Close in INFERRING, the edge discards the Begin.
    (S.INFERRING, V, T.CLOSE): S.CLOSED,
}
"""Frames the receiver accepts although the sender sent them in another state."""

_AFTER_FAILURE: Final = {(S.FAILED, T.ERROR): S.CLOSED}
"""A side whose peer broke the protocol may still say why, once."""

_Table = dict[tuple[State, Direction, FrameType], State]


def role_table(role: Role) -> _Table:
    """One side's table, derived from SESSION_TABLE."""
    table: _Table = {}
    for (state, sender, frame_type), after in SESSION_TABLE.items():
        direction = Direction.SEND if sender is role else Direction.RECEIVE
        table[(state, direction, frame_type)] = after
    for (state, sender, frame_type), after in _CROSSED.items():
        if sender is not role:
            table[(state, Direction.RECEIVE, frame_type)] = after
    for (state, frame_type), after in _AFTER_FAILURE.items():
        table[(state, Direction.SEND, frame_type)] = after
    return table


_TABLES: Final = {role: role_table(role) for role in Role}


class Connection:
    """One side of one protocol session; holds no socket.

    ``versions`` and ``suites`` are what this side speaks (the edge chooses
    from them); ``setup_once`` enforces the once-per-session setup request.
    """

    def __init__(
        self,
        role: Role,
        *,
        limits: FrameLimits | None = None,
        versions: tuple[int, ...] = PROTOCOL_VERSIONS,
        suites: tuple[str, ...] = SUITES,
        setup_once: bool = False,
    ) -> None:
        self.role = role
        self.limits = limits or FrameLimits()
        self.versions = versions
        self.suites = suites
        self.setup_once = setup_once
        self._table = _TABLES[role]
        self._state = State.START
        self._buffer = bytearray()
        self._header: FrameHeader | None = None
        self._eof = False
        self._error: RemoteProtocolError | None = None
        self._offered: ClientHello | None = None  # the camera's hello, once sent or received
        self._agreed: tuple[int, str] | None = None
        self._inference: int | None = None  # seq of the running inference
        self.inferences = 0  # InferenceBegins so far
        self.bytes_received = 0
        self.bytes_sent = 0

    @property
    def state(self) -> State:
        return self._state

    @property
    def version(self) -> int | None:
        """The negotiated protocol version (the edge: once the ClientHello is in)."""
        return None if self._agreed is None else self._agreed[0]

    @property
    def suite(self) -> str | None:
        """The negotiated secure-inference suite."""
        return None if self._agreed is None else self._agreed[1]

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
            raise LocalProtocolError("receive_data() after end of stream", ErrorCode.LOCAL_MISUSE)
        if not data:
            self._eof = True
            return
        if len(self._buffer) + len(data) > self.max_buffer:
            raise LocalProtocolError(
                "receive_data() called without draining next_event()", ErrorCode.LOCAL_MISUSE
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
            self._after(Direction.RECEIVE, self._header.frame_type)  # refuse before buffering
        header = self._header
        end = HEADER_SIZE + header.length
        if len(self._buffer) < end:
            return self._need_more()
        payload = bytes(self._buffer[HEADER_SIZE:end])
        del self._buffer[:end]
        self._header = None
        event = self._decode(header, payload)
        self._apply(Direction.RECEIVE, event)
        return event

    def _need_more(self) -> NeedData:
        if self._eof:
            if self._buffer or self._header is not None:
                raise RemoteProtocolError(
                    "the peer closed the stream mid-frame", ErrorCode.UNEXPECTED_EOF
                )
            raise RemoteProtocolError(
                f"the peer closed the stream in state {self._state.value}",
                ErrorCode.UNEXPECTED_EOF,
            )
        return NEED_DATA

    def _decode(self, header: FrameHeader, payload: bytes) -> Event:
        if header.frame_type is FrameType.DATA:
            return Data(payload=payload, more=bool(header.flags & FLAG_MORE))
        try:
            return decode_control(header.frame_type, payload)
        except ValidationError as exc:
            bad_json = any(e["type"] == "json_invalid" for e in exc.errors())
            code = ErrorCode.BAD_JSON if bad_json else ErrorCode.BAD_MESSAGE
            raise RemoteProtocolError(
                f"invalid {header.frame_type.name} payload: {first_lines(exc)}", code
            ) from None

    # -- outgoing ----------------------------------------------------------
    def send(self, event: ControlEvent | Data) -> bytes:
        """Bytes that put ``event`` on the wire; LocalProtocolError if not allowed now."""
        frame_type = event.frame_type
        self._after(Direction.SEND, frame_type)
        self._check_rules(Direction.SEND, event)
        if isinstance(event, Data):
            flags = FLAG_MORE if event.more else 0
            out = encode_frame(frame_type, event.payload, flags=flags, limits=self.limits)
        else:
            try:
                payload = encode_control(event)
            except ValueError as exc:
                raise LocalProtocolError(f"cannot encode {frame_type.name}: {exc}") from None
            out = encode_frame(frame_type, payload, limits=self.limits)
        self._apply(Direction.SEND, event)
        self.bytes_sent += len(out)
        return out

    # -- the rules ---------------------------------------------------------
    def _after(self, direction: Direction, frame_type: FrameType) -> State:
        """The state after this frame, or the table's refusal."""
        after = self._table.get((self._state, direction, frame_type))
        if after is not None:
            return after
        if direction is Direction.RECEIVE:
            raise RemoteProtocolError(
                f"{frame_type.name} is not allowed in state {self._state.value}",
                ErrorCode.WRONG_STATE,
            )
        if self._state is State.CLOSED:
            raise LocalProtocolError(
                "the session is over: nothing more may be sent", ErrorCode.CLOSED
            )
        raise LocalProtocolError(
            f"cannot send {frame_type.name} in state {self._state.value}", ErrorCode.WRONG_STATE
        )

    def _apply(self, direction: Direction, event: Event) -> None:
        """Check the rules beyond the table, then take the transition."""
        if direction is Direction.RECEIVE:
            self._check_rules(direction, event)
        assert not isinstance(event, ConnectionClosed)
        self._state = self._after(direction, event.frame_type)
        if isinstance(event, InferenceBegin):
            self._inference = event.seq
            self.inferences += 1
        elif isinstance(event, InferenceEnd):
            self._inference = None

    def _check_rules(self, direction: Direction, event: Event) -> None:
        bad: type[ProtocolError] = (
            RemoteProtocolError if direction is Direction.RECEIVE else LocalProtocolError
        )
        if isinstance(event, ClientHello):
            self._offered = event
            if self.role is Role.SERVER:
                self._agreed = self._negotiate(event)
        elif isinstance(event, ServerHello):
            self._check_server_hello(event, direction)
        elif isinstance(event, InferenceBegin):
            first = self.inferences == 0
            if self.setup_once and event.setup != first:
                raise bad(
                    "setup must be requested on the first inference of a session, and only then",
                    ErrorCode.BAD_MESSAGE,
                )
        elif isinstance(event, InferenceEnd) and event.seq != self._inference:
            raise bad(
                f"InferenceEnd for {event.seq}, expected {self._inference}", ErrorCode.BAD_MESSAGE
            )

    def _negotiate(self, hello: ClientHello) -> tuple[int, str]:
        """The edge's choice: highest common version, the camera's first common suite."""
        common = sorted(set(hello.versions) & set(self.versions))
        if not common:
            raise NegotiationError(
                f"the edge speaks protocol versions {list(self.versions)}; "
                f"the camera offered {list(hello.versions)}",
                ErrorCode.VERSION_MISMATCH,
            )
        suite = next((x for x in hello.suites if x in self.suites), None)
        if suite is None:
            raise NegotiationError(
                f"the edge supports suites {list(self.suites)}", ErrorCode.NO_COMMON_SUITE
            )
        return common[-1], suite

    def _check_server_hello(self, hello: ServerHello, direction: Direction) -> None:
        if direction is Direction.SEND:
            if (hello.version, hello.suite) != self._agreed:
                raise LocalProtocolError(
                    f"ServerHello must carry the negotiated version and suite {self._agreed}",
                    ErrorCode.BAD_MESSAGE,
                )
            return
        offered = self._offered
        assert offered is not None  # the table admits a ServerHello only after our hello
        if hello.version not in offered.versions:
            raise NegotiationError(
                f"the edge chose protocol version {hello.version}, which the camera "
                f"did not offer ({list(offered.versions)})",
                ErrorCode.VERSION_MISMATCH,
            )
        if hello.suite not in offered.suites:
            raise NegotiationError(
                f"the edge chose suite {hello.suite!r}, which the camera did not offer",
                ErrorCode.NO_COMMON_SUITE,
            )
        self._agreed = (hello.version, hello.suite)
