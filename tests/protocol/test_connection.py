"""Two in-memory peers drive the sans-IO state machines through whole sessions."""

from __future__ import annotations

import pytest

from secfepas_sdk.errors import LocalProtocolError, RemoteProtocolError
from secfepas_sdk.protocol.connection import NEED_DATA, Connection, Role, State
from secfepas_sdk.protocol.events import (
    ClientHello,
    Close,
    ConnectionClosed,
    Data,
    Error,
    Event,
    InferenceBegin,
    InferenceEnd,
    ServerHello,
)
from secfepas_sdk.protocol.frames import HEADER, MAGIC, FrameLimits, FrameType

HELLO = ClientHello(versions=(1,), model_id="m1", suites=("snni-cheetah-v1",))
SHELLO = ServerHello(
    version=1, suite="snni-cheetah-v1", session_id="s1", manifest={"a": [1, 2.5]}, plan={}
)


def deliver(src: Connection, dst: Connection, event: object) -> list[Event]:
    dst.receive_data(src.send(event))  # type: ignore[arg-type]
    out: list[Event] = []
    while (ev := dst.next_event()) is not NEED_DATA:
        out.append(ev)  # type: ignore[arg-type]
    return out


def ready_pair(limits: FrameLimits | None = None) -> tuple[Connection, Connection]:
    c, s = Connection(Role.CLIENT, limits=limits), Connection(Role.SERVER, limits=limits)
    assert deliver(c, s, HELLO) == [HELLO]
    assert deliver(s, c, SHELLO) == [SHELLO]
    return c, s


def test_full_session_two_inferences_then_close() -> None:
    c, s = ready_pair()
    assert c.state is State.READY and s.state is State.READY
    for seq in range(2):
        assert deliver(c, s, InferenceBegin(seq=seq, setup=seq == 0)) == [
            InferenceBegin(seq=seq, setup=seq == 0)
        ]
        assert deliver(c, s, Data(payload=b"x" * 100, more=True)) == [
            Data(payload=b"x" * 100, more=True)
        ]
        assert deliver(s, c, Data(payload=b"y")) == [Data(payload=b"y")]
        assert deliver(s, c, InferenceEnd(seq=seq)) == [InferenceEnd(seq=seq)]
    assert deliver(c, s, Close(reason="done")) == [Close(reason="done")]
    assert c.state is State.CLOSED and s.state is State.CLOSED
    s.receive_data(b"")
    assert s.next_event() == ConnectionClosed()
    assert c.bytes_sent == s.bytes_received


def test_many_frames_in_one_read_come_out_in_order() -> None:
    c, s = ready_pair()
    blob = c.send(InferenceBegin(seq=1, setup=True))
    blob += b"".join(c.send(Data(payload=bytes([i]) * i)) for i in range(50))
    s.receive_data(blob)
    events = []
    while (ev := s.next_event()) is not NEED_DATA:
        events.append(ev)
    assert events[0] == InferenceBegin(seq=1, setup=True)
    assert [len(e.payload) for e in events[1:]] == list(range(50))  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("sender", "event"),
    [
        ("client", InferenceBegin(seq=0, setup=True)),  # before the hello
        ("client", Data(payload=b"")),
        ("server", SHELLO),  # the server may not speak first
        ("client", Close()),
    ],
)
def test_local_misuse_before_handshake(sender: str, event: object) -> None:
    conn = Connection(Role.CLIENT if sender == "client" else Role.SERVER)
    with pytest.raises(LocalProtocolError) as exc:
        conn.send(event)  # type: ignore[arg-type]
    assert exc.value.code == "wrong_state"
    assert conn.state is State.START


def test_client_may_not_send_inference_end_nor_data_outside_inference() -> None:
    c, _ = ready_pair()
    with pytest.raises(LocalProtocolError):
        c.send(InferenceEnd(seq=0))
    with pytest.raises(LocalProtocolError):
        c.send(Data(payload=b"1"))


def test_wrong_state_frame_from_peer_is_remote_error_and_sticky() -> None:
    c, _s = ready_pair()
    # A server that sends DATA while no inference runs breaks the protocol.
    from secfepas_sdk.protocol.frames import encode_frame

    c.receive_data(encode_frame(FrameType.DATA, b"zz", limits=c.limits))
    with pytest.raises(RemoteProtocolError) as exc:
        c.next_event()
    assert exc.value.code == "wrong_state"
    assert c.state is State.FAILED
    with pytest.raises(RemoteProtocolError):
        c.next_event()
    # We may still tell the peer why, exactly once.
    out = c.send(Error(code="wrong_state", message=str(exc.value)))
    assert out[:4] == MAGIC
    with pytest.raises(LocalProtocolError):
        c.send(Close())


def test_oversized_length_is_refused_from_header_alone() -> None:
    limits = FrameLimits(max_control=64, max_data=128)
    _c, _s = ready_pair(FrameLimits(max_control=4096, max_data=128))
    s2 = Connection(Role.SERVER, limits=limits)
    s2.receive_data(HEADER.pack(MAGIC, 1, FrameType.CLIENT_HELLO, 0, 65))
    with pytest.raises(RemoteProtocolError) as exc:
        s2.next_event()
    assert exc.value.code == "frame_too_large"


def test_eof_mid_frame_and_mid_session() -> None:
    c, s = ready_pair()
    raw = c.send(InferenceBegin(seq=0, setup=True))
    s.receive_data(raw[:5])
    s.receive_data(b"")
    with pytest.raises(RemoteProtocolError) as exc:
        s.next_event()
    assert exc.value.code == "unexpected_eof"
    c2, _s2 = ready_pair()
    c2.receive_data(b"")
    with pytest.raises(RemoteProtocolError) as exc:
        c2.next_event()
    assert exc.value.code == "unexpected_eof"


def test_error_event_ends_session_both_ways() -> None:
    c, s = ready_pair()
    assert deliver(s, c, Error(code="busy", message="full")) == [Error(code="busy", message="full")]
    assert c.state is State.CLOSED and s.state is State.CLOSED
    with pytest.raises(LocalProtocolError):
        s.send(Close())


def test_server_close_crossing_client_begin() -> None:
    c, s = ready_pair()
    begin = c.send(InferenceBegin(seq=0, setup=True))
    close = s.send(Close(reason="shutting down"))
    c.receive_data(close)
    assert c.next_event() == Close(reason="shutting down")
    assert c.state is State.CLOSED
    s.receive_data(begin)  # crossed on the wire: discarded after our Close
    assert s.next_event() is NEED_DATA


def test_invalid_json_and_schema_violations_have_codes() -> None:
    from secfepas_sdk.protocol.frames import encode_frame

    for payload, code in [
        (b"{not json", "bad_json"),
        (b"\xff\xfe", "bad_json"),
        (b"[]", "bad_message"),
        (b'{"versions":[1],"model_id":"m","suites":["s"],"extra":1}', "bad_message"),
        (b'{"versions":["1"],"model_id":"m","suites":["s"]}', "bad_message"),
        (b'{"versions":[1],"model_id":"../etc","suites":["s"]}', "bad_message"),
        (b'{"versions":[],"model_id":"m","suites":["s"]}', "bad_message"),
    ]:
        s = Connection(Role.SERVER)
        s.receive_data(encode_frame(FrameType.CLIENT_HELLO, payload, limits=s.limits))
        with pytest.raises(RemoteProtocolError) as exc:
            s.next_event()
        assert exc.value.code == code, payload


def test_events_validate_their_fields() -> None:
    with pytest.raises(ValueError):
        ClientHello(versions=(), model_id="m", suites=("s",))
    with pytest.raises(ValueError):
        Error(code="not_a_code", message="x")
    with pytest.raises(ValueError):
        InferenceBegin(seq=-1, setup=False)
    with pytest.raises(ValueError):
        Data(payload="text")  # type: ignore[arg-type]
    assert "secret" not in repr(Data(payload=b"secret"))


def test_caller_must_drain_before_feeding_more() -> None:
    s = Connection(Role.SERVER, limits=FrameLimits(max_control=16, max_data=16))
    with pytest.raises(LocalProtocolError):
        s.receive_data(b"\x00" * (s.max_buffer + 1))
