"""Two in-memory peers drive the sans-IO state machines through whole sessions."""

from __future__ import annotations

import pytest

from secfepas_sdk.errors import (
    ConnectionLostError,
    ErrorCode,
    LocalProtocolError,
    NegotiationError,
    PeerError,
    ProtocolError,
    RemoteProtocolError,
)
from secfepas_sdk.protocol.connection import (
    NEED_DATA,
    SESSION_TABLE,
    Connection,
    Direction,
    Role,
    State,
    role_table,
)
from secfepas_sdk.protocol.events import (
    OT_EXTENSIONS,
    SUITE_CHEETAH_FERRET_V5,
    SUITE_CHEETAH_V3,
    SUITES,
    ClientHello,
    Close,
    ConnectionClosed,
    Data,
    Error,
    Event,
    InferenceBegin,
    InferenceEnd,
    ServerHello,
    encode_control,
    suite_ot_extension,
    suites_for,
)
from secfepas_sdk.protocol.framing import HEADER, MAGIC, FrameLimits, FrameType, encode_frame

HELLO = ClientHello(versions=(1,), model_id="m1", suites=("snni-cheetah-v3",))
SHELLO = ServerHello(
    version=1, suite="snni-cheetah-v3", session_id="s1", manifest={"a": [1, 2.5]}, plan={}
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
    from secfepas_sdk.protocol.framing import encode_frame

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
    from secfepas_sdk.protocol.framing import encode_frame

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
    with pytest.raises(LocalProtocolError):
        ClientHello(versions=(), model_id="m", suites=("s",))
    with pytest.raises(LocalProtocolError):
        Error(code="not_a_code", message="x")  # type: ignore[arg-type]
    with pytest.raises(LocalProtocolError):
        Error(code=ErrorCode.CONNECTION_LOST, message="x")  # local-only: never on the wire
    with pytest.raises(LocalProtocolError):
        InferenceBegin(seq=-1, setup=False)
    with pytest.raises(LocalProtocolError):
        Data(payload="text")  # type: ignore[arg-type]
    assert "secret" not in repr(Data(payload=b"secret"))


def test_caller_must_drain_before_feeding_more() -> None:
    s = Connection(Role.SERVER, limits=FrameLimits(max_control=16, max_data=16))
    with pytest.raises(LocalProtocolError):
        s.receive_data(b"\x00" * (s.max_buffer + 1))


def test_the_two_roles_tables_mirror_each_other() -> None:
    """What one side may send is exactly what the other may receive, bar the listed
    exceptions: the crossed Close, and the one Error after a failure."""
    client, server = role_table(Role.CLIENT), role_table(Role.SERVER)
    flip = {Direction.SEND: Direction.RECEIVE, Direction.RECEIVE: Direction.SEND}
    mirrored = {(st, flip[d], t): after for (st, d, t), after in client.items()}
    extra_client = set(client) - {(st, flip[d], t) for (st, d, t) in server}
    assert extra_client == {
        (State.INFERRING, Direction.RECEIVE, FrameType.CLOSE),
        (State.FAILED, Direction.SEND, FrameType.ERROR),
    }
    for key, after in server.items():
        if key[0] is not State.FAILED:
            assert mirrored[key] is after, key
    for state in (State.START, State.AWAIT_SERVER_HELLO, State.READY, State.INFERRING):
        for role in Role:
            assert SESSION_TABLE[(state, role, FrameType.ERROR)] is State.CLOSED


def test_inference_end_must_name_the_running_inference() -> None:
    c, s = ready_pair()
    deliver(c, s, InferenceBegin(seq=4, setup=True))
    with pytest.raises(LocalProtocolError) as local:
        s.send(InferenceEnd(seq=5))
    assert local.value.code == "bad_message"
    forged = encode_frame(
        FrameType.INFERENCE_END, encode_control(InferenceEnd(seq=5)), limits=s.limits
    )
    c.receive_data(forged)
    with pytest.raises(RemoteProtocolError) as remote:
        c.next_event()
    assert remote.value.code == "bad_message"
    assert "expected 4" in str(remote.value)


@pytest.mark.parametrize("setups", [(False,), (True, True)])
def test_setup_once_is_enforced_on_both_sides(setups: tuple[bool, ...]) -> None:
    c = Connection(Role.CLIENT, setup_once=True)
    s = Connection(Role.SERVER, setup_once=True)
    deliver(c, s, HELLO)
    deliver(s, c, SHELLO)
    for i, setup in enumerate(setups[:-1]):
        deliver(c, s, InferenceBegin(seq=i, setup=setup))
        deliver(s, c, InferenceEnd(seq=i))
    last = InferenceBegin(seq=len(setups), setup=setups[-1])
    with pytest.raises(LocalProtocolError) as local:
        c.send(last)
    assert local.value.code == "bad_message"
    s.receive_data(encode_frame(FrameType.INFERENCE_BEGIN, encode_control(last), limits=s.limits))
    with pytest.raises(RemoteProtocolError) as remote:
        s.next_event()
    assert remote.value.code == "bad_message"


def test_the_edge_negotiates_and_must_answer_with_what_it_chose() -> None:
    c, s = Connection(Role.CLIENT), Connection(Role.SERVER, versions=(1, 2, 3), suites=("b", "a"))
    deliver(c, s, ClientHello(versions=(1, 2), model_id="m", suites=("a", "b")))
    assert (s.version, s.suite) == (2, "a")  # highest common version, camera's first suite
    wrong = ServerHello(version=1, suite="a", session_id="s", manifest={}, plan={})
    with pytest.raises(LocalProtocolError):
        s.send(wrong)
    assert s.state is State.AWAIT_SERVER_HELLO
    deliver(s, c, ServerHello(version=2, suite="a", session_id="s", manifest={}, plan={}))
    assert (c.version, c.suite) == (2, "a")


@pytest.mark.parametrize(
    ("hello", "code"),
    [
        (
            ClientHello(versions=(2, 3), model_id="m", suites=("snni-cheetah-v3",)),
            "version_mismatch",
        ),
        (ClientHello(versions=(1,), model_id="m", suites=("other",)), "no_common_suite"),
        # A camera of before issue 10 sends its whole HE key (the edge no longer takes
        # one): refused at the hello, not halfway through its first inference.
        (ClientHello(versions=(1,), model_id="m", suites=("snni-cheetah-v1",)), "no_common_suite"),
        # A camera of before the round cuts (v2 flights): refused at the hello too.
        (
            ClientHello(
                versions=(1,), model_id="m", suites=("snni-cheetah-v2", "snni-cheetah-ferret-v2")
            ),
            "no_common_suite",
        ),
    ],
)
def test_a_hello_without_common_ground_is_a_negotiation_error(
    hello: ClientHello, code: str
) -> None:
    s = Connection(Role.SERVER)
    s.receive_data(Connection(Role.CLIENT).send(hello))
    with pytest.raises(NegotiationError) as exc:
        s.next_event()
    assert exc.value.code == code
    assert s.state is State.FAILED
    s.send(Error(code=ErrorCode(code), message=str(exc.value)))  # the edge may still say why
    assert s.state is State.CLOSED


@pytest.mark.parametrize(("version", "suite"), [(2, "snni-cheetah-v3"), (1, "other-suite")])
def test_the_camera_refuses_a_version_or_suite_it_did_not_offer(version: int, suite: str) -> None:
    c = Connection(Role.CLIENT)
    c.send(HELLO)
    hello = ServerHello(version=version, suite=suite, session_id="s", manifest={}, plan={})
    c.receive_data(encode_frame(FrameType.SERVER_HELLO, encode_control(hello), limits=c.limits))
    with pytest.raises(NegotiationError) as exc:
        c.next_event()
    assert exc.value.code == ("version_mismatch" if version != 1 else "no_common_suite")
    assert c.version is None


def test_session_outcomes_are_not_protocol_errors() -> None:
    """``except ProtocolError`` means bad bytes or API misuse, never a lost link."""
    assert not issubclass(PeerError, ProtocolError)
    assert not issubclass(ConnectionLostError, ProtocolError)
    assert issubclass(NegotiationError, RemoteProtocolError)
    assert PeerError("x", "busy").code is ErrorCode.BUSY


def test_suites_name_their_ot_extension_and_unknown_ones_are_refused() -> None:
    """Each suite pins one OT extension; a camera's proposal keeps its order; an
    unknown, repeated or empty list is a ValueError that names the choices."""
    assert suites_for(("ferret", "softspoken")) == (SUITE_CHEETAH_FERRET_V5, SUITE_CHEETAH_V3)
    assert [suite_ot_extension(s) for s in SUITES] == list(OT_EXTENSIONS)
    assert suite_ot_extension(SUITE_CHEETAH_V3) == "softspoken"  # a suite's meaning never changes
    for bad in (("iknp",), ("ferret", "ferret"), ()):
        with pytest.raises(ValueError, match="OT extension") as exc:
            suites_for(bad)
        assert "softspoken" in str(exc.value) or "distinct" in str(exc.value)


def test_the_edge_takes_the_cameras_first_allowed_ot_extension() -> None:
    """The camera proposes; the edge chooses from its allowed set (in the camera's
    order); an edge that allows none of the proposal refuses, naming what it allows."""
    proposal = suites_for(("ferret", "softspoken"))
    for allowed, chosen in ((("softspoken", "ferret"), "ferret"), (("softspoken",), "softspoken")):
        c, s = Connection(Role.CLIENT), Connection(Role.SERVER, suites=suites_for(allowed))
        deliver(c, s, ClientHello(versions=(1,), model_id="m", suites=proposal))
        assert s.suite is not None and suite_ot_extension(s.suite) == chosen
    s = Connection(Role.SERVER, suites=suites_for(("softspoken",)))
    only_ferret = ClientHello(versions=(1,), model_id="m", suites=suites_for(("ferret",)))
    s.receive_data(Connection(Role.CLIENT).send(only_ferret))
    with pytest.raises(NegotiationError) as exc:
        s.next_event()
    assert exc.value.code == "no_common_suite" and SUITE_CHEETAH_V3 in str(exc.value)
