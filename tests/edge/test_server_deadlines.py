"""Each frame from a camera has one deadline on the real edge: a peer trickling a
TLS ClientHello, a protocol ClientHello or a later frame byte by byte is cut
when it expires, not kept alive by every byte (slowloris)."""

from __future__ import annotations

import asyncio
import ssl
import time
from contextlib import suppress
from pathlib import Path
from typing import Any

from testkit.edge import running

from secfepas_sdk.protocol.connection import Connection, Role
from secfepas_sdk.protocol.events import ClientHello, InferenceBegin
from secfepas_sdk.protocol.transport import client_context, open_client

MODEL = "demo-pain-cnn"
STEP_S = 0.05  # one byte per step: every read() returns well within any deadline
HELLO = ClientHello(versions=(1,), model_id=MODEL, suites=("snni-cheetah-v3",))


def _tls_client_hello(ctx: ssl.SSLContext) -> bytes:
    """The bytes a real TLS 1.3 client sends first."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(incoming, outgoing, server_hostname="localhost")
    with suppress(ssl.SSLWantReadError):
        tls.do_handshake()
    return outgoing.read()


async def _trickle(write: Any, drain: Any, data: bytes, closed: Any) -> float:
    """Write ``data`` one byte per 50 ms until the edge closes; seconds until it did."""
    start = time.monotonic()
    for i in range(len(data)):
        try:
            write(data[i : i + 1])
            await drain()
        except ConnectionError:
            break
        if closed():
            break
        await asyncio.sleep(STEP_S)
    return time.monotonic() - start


def test_trickled_tls_client_hello_is_cut_at_the_handshake_deadline(
    make_settings: Any, camera_tls: Any, demo_models: Path
) -> None:
    async def main() -> None:
        settings = make_settings(model_dir=demo_models, handshake_timeout_s=1.0)
        async with running(settings, grace_s=2.0) as server:
            hello = _tls_client_hello(client_context(camera_tls()))
            assert len(hello) * STEP_S > 4.0  # trickled whole, it would take longer
            reader, writer = await asyncio.open_connection(*server.address)
            eof = asyncio.ensure_future(reader.read())  # returns when the edge closes
            took = await _trickle(writer.write, writer.drain, hello, eof.done)
            async with asyncio.timeout(5):
                await eof
            writer.close()
            assert took < 3.0
            for _ in range(100):
                if server.metrics.tls_refused == 1:
                    break
                await asyncio.sleep(0.05)
            assert server.metrics.tls_refused == 1

    asyncio.run(main())


def test_trickled_frames_after_tls_are_cut_at_their_deadline(
    make_settings: Any, camera_tls: Any, demo_models: Path
) -> None:
    async def main() -> None:
        settings = make_settings(
            model_dir=demo_models,
            handshake_timeout_s=1.0,
            message_timeout_s=0.5,
            idle_timeout_s=60.0,
        )
        async with running(settings, grace_s=2.0) as server:
            ctx = client_context(camera_tls())
            # 1. The protocol ClientHello, byte by byte, inside the handshake deadline.
            stream = await open_client("127.0.0.1", server.address[1], ctx, timeout=5)
            frame = Connection(Role.CLIENT).send(HELLO)
            took = await _trickle(
                stream.writer.write, stream.writer.drain, frame, stream.reader.at_eof
            )
            assert took < 3.0 < len(frame) * STEP_S
            await stream.aclose()
            # 2. A session's InferenceBegin, byte by byte, while the idle timer is 60 s.
            stream = await open_client("127.0.0.1", server.address[1], ctx, timeout=5)
            await stream.send(HELLO)
            await stream.next_event(30)  # ServerHello
            begin = stream.conn.send(InferenceBegin(seq=0, setup=True))
            pad = bytes(200)  # whatever follows: the frame's deadline has passed by then
            took = await _trickle(
                stream.writer.write, stream.writer.drain, begin + pad, stream.reader.at_eof
            )
            assert took < 3.0
            await stream.aclose()
            for _ in range(100):
                if server.metrics.errors["timeout"] >= 2:
                    break
                await asyncio.sleep(0.05)
            assert server.metrics.errors["timeout"] >= 2

    asyncio.run(main())
