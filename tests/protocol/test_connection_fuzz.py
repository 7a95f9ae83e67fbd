"""Hypothesis fuzzing of the sans-IO layer: whatever bytes arrive, the connection
returns events or NEED_DATA, or raises RemoteProtocolError with a known code; it
never crashes otherwise, never loops forever, and never buffers beyond its bound."""

from __future__ import annotations

import itertools

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from secfepas_sdk.errors import RemoteProtocolError
from secfepas_sdk.protocol.connection import NEED_DATA, Connection, Role, State
from secfepas_sdk.protocol.events import (
    ERROR_CODES,
    ClientHello,
    Close,
    ConnectionClosed,
    Data,
    Error,
    InferenceBegin,
    InferenceEnd,
    ServerHello,
)
from secfepas_sdk.protocol.framing import HEADER, MAGIC, FrameLimits, FrameType

LIMITS = FrameLimits(max_control=2048, max_data=4096)
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _ready(role: Role) -> Connection:
    """A connection of ``role`` that has completed the handshake."""
    c, s = Connection(Role.CLIENT, limits=LIMITS), Connection(Role.SERVER, limits=LIMITS)
    s.receive_data(c.send(ClientHello(versions=(1,), model_id="m", suites=("snni-cheetah-v3",))))
    assert isinstance(s.next_event(), ClientHello)
    c.receive_data(
        s.send(
            ServerHello(version=1, suite="snni-cheetah-v3", session_id="s", manifest={}, plan={})
        )
    )
    assert isinstance(c.next_event(), ServerHello)
    return c if role is Role.CLIENT else s


def drain(conn: Connection, chunks: list[bytes]) -> BaseException | None:
    """Feed chunks like a transport would (drain after each), then EOF.

    Returns the protocol error raised, or None if the stream ended cleanly.
    """
    try:
        for chunk in chunks:
            conn.receive_data(chunk)
            for _ in range(len(chunk) + 2):  # every event consumes >= 12 bytes
                if conn.next_event() is NEED_DATA:
                    break
            else:
                raise AssertionError("next_event() did not settle")
            assert len(conn._buffer) <= conn.max_buffer
        conn.receive_data(b"")
        for _ in range(4):
            ev = conn.next_event()
            if isinstance(ev, ConnectionClosed):
                return None
        raise AssertionError("EOF did not end the stream")
    except RemoteProtocolError as exc:
        assert exc.code in ERROR_CODES, exc.code
        assert conn.state is State.FAILED
        return exc


def _chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(points) if b > a]


@FUZZ
@given(
    role=st.sampled_from(list(Role)),
    ready=st.booleans(),
    data=st.binary(max_size=600),
    cuts=st.lists(st.integers(0, 600), max_size=8),
)
def test_random_bytes_end_in_protocol_error(
    role: Role, ready: bool, data: bytes, cuts: list[int]
) -> None:
    conn = _ready(role) if ready else Connection(role, limits=LIMITS)
    err = drain(conn, _chunked(data, cuts))
    assert err is not None  # random bytes never make a clean session end


@FUZZ
@given(
    role=st.sampled_from(list(Role)),
    magic=st.one_of(st.just(MAGIC), st.binary(min_size=4, max_size=4)),
    version=st.integers(0, 255),
    frame_type=st.integers(0, 255),
    flags=st.integers(0, 0xFFFF),
    length=st.integers(0, 0xFFFFFFFF),
    payload=st.binary(max_size=300),
)
def test_random_headers_end_in_protocol_error(
    role: Role,
    magic: bytes,
    version: int,
    frame_type: int,
    flags: int,
    length: int,
    payload: bytes,
) -> None:
    conn = _ready(role)
    frame = HEADER.pack(magic, version, frame_type, flags, length) + payload[:length]
    err = drain(conn, [frame])
    assert err is not None
    if magic != MAGIC:
        assert err.code == "bad_magic"  # type: ignore[attr-defined]
    elif length > max(LIMITS.max_control, LIMITS.max_data):
        assert err.code in {"frame_too_large", "unsupported_version", "unknown_type", "bad_flags"}  # type: ignore[attr-defined]


@FUZZ
@given(length=st.integers(LIMITS.max_data + 1, 0xFFFFFFFF))
def test_oversized_data_frame_refused_before_payload(length: int) -> None:
    conn = _ready(Role.SERVER)
    peer = _ready(Role.CLIENT)
    conn.receive_data(peer.send(InferenceBegin(seq=1, setup=False)))
    assert conn.next_event() == InferenceBegin(seq=1, setup=False)
    err = drain(conn, [HEADER.pack(MAGIC, 1, FrameType.DATA, 0, length)])
    assert err is not None
    assert err.code == "frame_too_large"  # type: ignore[attr-defined]


def _session_frames() -> list[tuple[Role, object]]:
    return [
        (Role.CLIENT, ClientHello(versions=(1,), model_id="m", suites=("snni-cheetah-v3",))),
        (
            Role.SERVER,
            ServerHello(version=1, suite="snni-cheetah-v3", session_id="s", manifest={}, plan={}),
        ),
        (Role.CLIENT, InferenceBegin(seq=0, setup=True)),
        (Role.CLIENT, Data(payload=b"a" * 40, more=True)),
        (Role.SERVER, Data(payload=b"b" * 30)),
        (Role.SERVER, InferenceEnd(seq=0)),
        (Role.CLIENT, Close()),
    ]


def _wire_from(sender: Role) -> bytes:
    """Everything ``sender`` writes in a correct session (produced by real peers)."""
    peers = {Role.CLIENT: Connection(Role.CLIENT), Role.SERVER: Connection(Role.SERVER)}
    out = b""
    for who, event in _session_frames():
        raw = peers[who].send(event)  # type: ignore[arg-type]
        other = Role.SERVER if who is Role.CLIENT else Role.CLIENT
        peers[other].receive_data(raw)
        peers[other].next_event()
        if who is sender:
            out += raw
    return out


def _replay(receiver: Connection, chunks: list[bytes]) -> BaseException | None:
    """Feed the sender's bytes in chunks while ``receiver`` sends its own part of
    the script as soon as it is due; then EOF. Returns the protocol error, if any."""
    script = _session_frames()
    own = [i for i, (who, _) in enumerate(script) if who is receiver.role]
    received = 0

    def send_due() -> None:
        nonlocal received
        while (
            own and sum(1 for i in range(own[0]) if script[i][0] is not receiver.role) <= received
        ):
            receiver.send(script[own.pop(0)][1])  # type: ignore[arg-type]

    try:
        send_due()
        for chunk in chunks:
            receiver.receive_data(chunk)
            while (ev := receiver.next_event()) is not NEED_DATA:
                assert not isinstance(ev, ConnectionClosed)
                received += 1
                send_due()
            assert len(receiver._buffer) <= receiver.max_buffer
        receiver.receive_data(b"")
        ev = receiver.next_event()
        assert isinstance(ev, ConnectionClosed), ev
        return None
    except RemoteProtocolError as exc:
        assert exc.code in ERROR_CODES
        return exc


@FUZZ
@given(
    sender=st.sampled_from(list(Role)),
    cut=st.integers(0, 10_000),
    cuts=st.lists(st.integers(0, 10_000), max_size=6),
)
def test_truncated_sessions_end_in_eof_error(sender: Role, cut: int, cuts: list[int]) -> None:
    wire = _wire_from(sender)
    cut %= len(wire)  # strictly shorter than the full transcript
    receiver = Connection(Role.SERVER if sender is Role.CLIENT else Role.CLIENT)
    err = _replay(receiver, _chunked(wire[:cut], cuts))
    if sender is Role.SERVER and receiver.state is State.CLOSED:
        return  # the client closed the session itself: the server's silence is fine
    assert err is not None
    assert err.code == "unexpected_eof"  # type: ignore[attr-defined]


@FUZZ
@given(sender=st.sampled_from(list(Role)), cuts=st.lists(st.integers(0, 10_000), max_size=6))
def test_full_sessions_in_any_chunking_end_cleanly(sender: Role, cuts: list[int]) -> None:
    wire = _wire_from(sender)
    receiver = Connection(Role.SERVER if sender is Role.CLIENT else Role.CLIENT)
    assert _replay(receiver, _chunked(wire, cuts)) is None
    assert receiver.state is State.CLOSED


_ANY_EVENT = st.sampled_from(
    [
        ClientHello(versions=(1,), model_id="m", suites=("snni-cheetah-v3",)),
        ServerHello(version=1, suite="snni-cheetah-v3", session_id="s", manifest={}, plan={}),
        InferenceBegin(seq=3, setup=False),
        Data(payload=b"q"),
        InferenceEnd(seq=3),
        Close(),
        Error(code="busy", message="x"),
    ]
)


@FUZZ
@given(events=st.lists(_ANY_EVENT, min_size=1, max_size=8), role=st.sampled_from(list(Role)))
def test_wrong_state_sequences_are_refused_by_the_table(events: list[object], role: Role) -> None:
    """Frames made by a permissive encoder in arbitrary order: the receiver accepts
    exactly what its table allows and otherwise fails with wrong_state."""
    from secfepas_sdk.protocol.events import encode_control
    from secfepas_sdk.protocol.framing import encode_frame

    receiver = Connection(role, limits=LIMITS)
    for event in events:
        if isinstance(event, Data):
            raw = encode_frame(FrameType.DATA, event.payload, limits=LIMITS)
        else:
            raw = encode_frame(event.frame_type, encode_control(event), limits=LIMITS)  # type: ignore[attr-defined,arg-type]
        before = receiver.state
        receiver.receive_data(raw)
        try:
            ev = receiver.next_event()
        except RemoteProtocolError as exc:
            assert exc.code == "wrong_state"
            assert before not in (State.CLOSED,)
            return
        if before is State.CLOSED:
            assert ev is NEED_DATA
        else:
            assert ev == event
