"""Real TLS 1.3 sockets on loopback: mutual authentication, refusals, framed I/O and
the thread bridge that carries a blocking Channel's messages as DATA frames."""

from __future__ import annotations

import asyncio
import socket
import ssl
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest

from secfepas_sdk.certs import Pki
from secfepas_sdk.errors import (
    ConfigError,
    ConnectionLostError,
    RemoteProtocolError,
    TlsRefusedError,
)
from secfepas_sdk.protocol.connection import Connection, Role
from secfepas_sdk.protocol.events import ClientHello, Data, InferenceBegin, ServerHello
from secfepas_sdk.protocol.framing import FrameLimits
from secfepas_sdk.protocol.messages import MessageAssembler
from secfepas_sdk.protocol.transport import (
    FramedStream,
    ThreadChannel,
    TlsFiles,
    client_context,
    open_client,
    server_context,
    tls_failure_reason,
)

HELLO = ClientHello(versions=(1,), model_id="m", suites=("snni-cheetah-v3",))
SHELLO = ServerHello(version=1, suite="snni-cheetah-v3", session_id="s", manifest={}, plan={})


def camera_files(pki: Pki, name: str = "camera-1") -> TlsFiles:
    cam = pki.camera(name)
    return TlsFiles(ca=pki.ca_cert, cert=cam.cert, key=cam.key)


def edge_files(pki: Pki) -> TlsFiles:
    return TlsFiles(ca=pki.ca_cert, cert=pki.edge_cert, key=pki.edge_key)


Handler = Callable[[FramedStream], Awaitable[None]]


@asynccontextmanager
async def tls_server(
    ctx: ssl.SSLContext, handler: Handler, refusals: list[str], limits: FrameLimits | None = None
) -> AsyncIterator[int]:
    """A loopback listener that does the TLS handshake itself (as the edge does)."""

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await writer.start_tls(ctx, ssl_handshake_timeout=5)
        except (ssl.SSLError, OSError, TimeoutError) as exc:
            refusals.append(tls_failure_reason(exc))
            writer.transport.abort()
            return
        stream = FramedStream(reader, writer, Connection(Role.SERVER, limits=limits))
        try:
            await handler(stream)
        finally:
            await stream.aclose()

    server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


async def hello_handler(stream: FramedStream) -> None:
    assert await stream.next_event(5) == HELLO
    await stream.send(
        ServerHello(
            version=1,
            suite="snni-cheetah-v3",
            session_id="s",
            manifest={"peer": stream.peer},
            plan={},
        )
    )
    await stream.next_event(5)


def test_mutual_tls_handshake_and_identity(pki: Pki) -> None:
    async def main() -> None:
        refusals: list[str] = []
        async with tls_server(server_context(edge_files(pki)), hello_handler, refusals) as port:
            stream = await open_client(
                "127.0.0.1", port, client_context(camera_files(pki)), timeout=5
            )
            assert stream.writer.get_extra_info("ssl_object").version() == "TLSv1.3"
            await stream.send(HELLO)
            reply = await stream.next_event(5)
            assert isinstance(reply, ServerHello)
            assert reply.manifest == {"peer": "camera-1"}  # the edge saw our CN
            assert stream.peer == "localhost"
            await stream.aclose()
        assert refusals == []

    asyncio.run(main())


def _refused(pki: Pki, client_ctx: ssl.SSLContext) -> tuple[list[str], BaseException]:
    async def main() -> tuple[list[str], BaseException]:
        refusals: list[str] = []
        async with tls_server(server_context(edge_files(pki)), hello_handler, refusals) as port:
            # A TLS alert or a bare close, depending on timing: never a ServerHello.
            with pytest.raises((ConnectionLostError, RemoteProtocolError)) as exc:
                stream = await open_client("127.0.0.1", port, client_ctx, timeout=5)
                # TLS 1.3: the server judges our certificate after our side finished.
                await stream.send(HELLO)
                await stream.next_event(5)
            await asyncio.sleep(0.05)
        return refusals, exc.value

    return asyncio.run(main())


def test_client_without_certificate_is_refused_and_logged(pki: Pki) -> None:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.load_verify_locations(cafile=str(pki.ca_cert))
    refusals, _ = _refused(pki, ctx)
    assert len(refusals) == 1
    assert "CERTIFICATE" in refusals[0].upper()


def test_client_certificate_from_foreign_ca_is_refused(pki: Pki, foreign_pki: Pki) -> None:
    foreign_cam = foreign_pki.camera("camera-1")
    files = TlsFiles(ca=pki.ca_cert, cert=foreign_cam.cert, key=foreign_cam.key)
    refusals, _ = _refused(pki, client_context(files))
    assert len(refusals) == 1
    assert "certificate" in refusals[0].lower()


def test_camera_pins_the_edge_ca(pki: Pki, foreign_pki: Pki) -> None:
    """An edge with a certificate from another CA is refused by the camera."""

    async def main() -> None:
        refusals: list[str] = []
        ctx = server_context(edge_files(foreign_pki))
        async with tls_server(ctx, hello_handler, refusals) as port:
            with pytest.raises(TlsRefusedError) as exc:  # permanent: not a ConnectionLostError
                await open_client("127.0.0.1", port, client_context(camera_files(pki)), timeout=5)
            assert str(exc.value).startswith("the edge's certificate failed verification")

    asyncio.run(main())


def test_tls_1_2_client_is_refused(pki: Pki) -> None:
    ctx = client_context(camera_files(pki))
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    refusals, _ = _refused(pki, ctx)
    assert len(refusals) == 1


def test_missing_tls_files_is_a_config_error(pki: Pki) -> None:
    with pytest.raises(ConfigError):
        client_context(TlsFiles(ca=pki.ca_cert, cert=pki.edge_cert, key=pki.root / "nope.key"))


def test_thread_channel_carries_large_messages_as_frames(pki: Pki) -> None:
    """A blocking 'party' in a thread on each side: messages above the frame limit
    are split with MORE and reassembled; the byte counts match on both sides."""
    limits = FrameLimits(max_control=1 << 16, max_data=1000)
    sizes = [0, 1, 999, 1000, 1001, 12_345]

    def blocking_party(chan: ThreadChannel, first: bool) -> list[int]:
        got = []
        for n in sizes:
            if first:
                chan.send(bytes([n % 251]) * n)
                got.append(len(chan.recv()))
            else:
                msg = chan.recv()
                got.append(len(msg))
                chan.send(msg[::-1] + b"!")
        return got

    async def pump(stream: FramedStream, chan: ThreadChannel, done: asyncio.Event) -> None:
        asm = MessageAssembler(1 << 20)
        while not done.is_set():
            try:
                ev = await asyncio.wait_for(stream.next_event(), 0.2)
            except (TimeoutError, ConnectionLostError):
                continue
            except RemoteProtocolError:
                return  # the other side finished first and closed (no InferenceEnd here)
            assert isinstance(ev, Data)
            message = asm.add(ev)
            if message is not None:
                chan.feed(message)

    async def run_party(stream: FramedStream, first: bool) -> list[int]:
        loop = asyncio.get_running_loop()
        chan = ThreadChannel(loop, stream.send_message, timeout_s=10)
        done = asyncio.Event()
        pump_task = asyncio.create_task(pump(stream, chan, done))
        try:
            return await asyncio.to_thread(blocking_party, chan, first)
        finally:
            done.set()
            await pump_task

    results: dict[str, list[int]] = {}

    async def server_side(stream: FramedStream) -> None:
        assert await stream.next_event(5) == HELLO
        await stream.send(SHELLO)
        assert await stream.next_event(5) == InferenceBegin(seq=0, setup=True)
        results["server"] = await run_party(stream, first=False)

    async def main() -> None:
        refusals: list[str] = []
        async with tls_server(
            server_context(edge_files(pki)), server_side, refusals, limits
        ) as port:
            stream = await open_client(
                "127.0.0.1", port, client_context(camera_files(pki)), limits=limits, timeout=5
            )
            await stream.send(HELLO)
            assert await stream.next_event(5) == SHELLO
            await stream.send(InferenceBegin(seq=0, setup=True))
            results["client"] = await run_party(stream, first=True)
            await stream.aclose()

    asyncio.run(main())
    assert results["server"] == sizes
    assert results["client"] == [n + 1 for n in sizes]
    assert threading.active_count() >= 1


def test_aclose_closes_the_socket_when_the_peer_never_answers_close_notify(pki: Pki) -> None:
    """A peer that completes TLS, then goes silent (it never reads, so it never answers
    our close_notify): aclose gives up after its short wait and aborts the transport,
    so the socket is closed rather than held until the SSL shutdown timeout."""
    ctx = server_context(edge_files(pki))
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    release = threading.Event()

    def silent_peer() -> None:
        conn, _ = listener.accept()
        with ctx.wrap_socket(conn, server_side=True):
            release.wait(30)

    peer = threading.Thread(target=silent_peer, daemon=True)
    peer.start()

    async def main() -> int:
        stream = await open_client("127.0.0.1", port, client_context(camera_files(pki)), timeout=5)
        sock = stream.writer.get_extra_info("socket")
        await stream.aclose()
        for _ in range(100):  # connection_lost runs on a later loop iteration
            if sock.fileno() == -1:
                break
            await asyncio.sleep(0)
        return int(sock.fileno())

    try:
        assert asyncio.run(main()) == -1
    finally:
        release.set()
        peer.join(10)
        listener.close()


def test_aclose_waits_for_the_socket_when_the_peer_closed_first(pki: Pki) -> None:
    """The edge says its last word and closes (close_notify) before the camera's aclose:
    the transport is already closing then, and aclose must still wait until its socket is
    closed, not return at once and leave an SSL shutdown running past the event loop
    (an unclosed transport, reported when it is collected)."""
    ctx = server_context(edge_files(pki))
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def closing_peer() -> None:
        conn, _ = listener.accept()
        tls = ctx.wrap_socket(conn, server_side=True)
        tls.sendall(b"\x00" * 16)  # a last frame's worth of bytes, then close_notify
        with tls.unwrap():
            pass

    peer = threading.Thread(target=closing_peer, daemon=True)
    peer.start()

    async def main() -> int:
        stream = await open_client("127.0.0.1", port, client_context(camera_files(pki)), timeout=5)
        sock = stream.writer.get_extra_info("socket")
        await stream.reader.readexactly(16)
        assert await stream.reader.read() == b""  # the peer's close_notify has been read
        await stream.aclose()
        return int(sock.fileno())  # no loop iteration in between

    try:
        assert asyncio.run(main()) == -1
    finally:
        peer.join(10)
        listener.close()
