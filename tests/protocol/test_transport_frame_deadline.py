"""FramedStream gives each frame one deadline: a peer that trickles bytes is cut
when it expires, however often it writes (slowloris)."""

from __future__ import annotations

import asyncio
import time

from secfepas_sdk.errors import ConnectionLostError, ErrorCode
from secfepas_sdk.protocol.connection import Connection, Role
from secfepas_sdk.protocol.events import ClientHello
from secfepas_sdk.protocol.transport import FramedStream


async def _trickle(frame: bytes, every_s: float) -> float:
    """Serve one connection that writes ``frame`` one byte per ``every_s`` to a
    FramedStream; return how long the stream waited before giving up."""
    got: asyncio.Future[float] = asyncio.get_running_loop().create_future()

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        stream = FramedStream(reader, writer, Connection(Role.SERVER))
        start = time.monotonic()
        try:
            await stream.next_event(30.0, frame_timeout=0.4)
        except ConnectionLostError as exc:
            assert exc.code == ErrorCode.TIMEOUT
            got.set_result(time.monotonic() - start)
        finally:
            writer.close()

    server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        async with asyncio.timeout(10):
            for i in range(len(frame)):
                if got.done():
                    break
                try:
                    writer.write(frame[i : i + 1])
                    await writer.drain()
                except ConnectionError:
                    break  # the stream gave up and closed
                await asyncio.sleep(every_s)
            return await got
    finally:
        writer.close()
        server.close()


def test_a_trickled_frame_is_cut_at_its_deadline() -> None:
    frame = Connection(Role.CLIENT).send(
        ClientHello(versions=(1,), model_id="m" * 100, suites=("snni-cheetah-v3",))
    )
    assert len(frame) * 0.02 > 2.0  # the whole trickle would take longer than allowed
    # 20 ms per byte: every read() returns well within 0.4 s, the frame never does.
    waited = asyncio.run(_trickle(frame, 0.02))
    assert 0.35 <= waited < 2.0
