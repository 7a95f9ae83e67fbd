"""The edge's session forwards SNNI traffic chunk by chunk: the event loop never
joins a message, and the worker refuses a message larger than the protocol step
allows (from the plan) before it has read the excess."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from testkit.edge import running

from secfepas_sdk.errors import ConnectionLostError
from secfepas_sdk.models.package import load_public
from secfepas_sdk.protocol.events import (
    SUITES,
    ClientHello,
    ConnectionClosed,
    Data,
    Error,
    InferenceBegin,
    ServerHello,
)
from secfepas_sdk.protocol.transport import client_context, open_client
from secfepas_sdk.snni.he.params import get_params

MODEL = "demo-pain-cnn"
FRAME = 1 << 20
FLOOD = 256 * FRAME  # far below the 1 GiB message cap, far above a public key


def _pk0_bytes(models: Path) -> int:
    """The size of the camera's pk0 for the demo plan's HE parameter set: one uint64 per
    coefficient of each working-level prime (the set is chosen by the model's budget)."""
    (package,) = models.iterdir()
    params = get_params(load_public(package).plan.he_params)
    return 8 * params.poly_degree * (len(params.coeff_bits) - 1)


def test_oversized_setup_message_is_refused_while_it_is_still_arriving(
    make_settings: Any, camera_tls: Any, demo_models: Path
) -> None:
    async def main() -> None:
        async with running(
            make_settings(model_dir=demo_models, max_sessions=1), grace_s=2.0
        ) as server:
            stream = await open_client(
                "127.0.0.1", server.address[1], client_context(camera_tls()), timeout=5
            )
            await stream.send(
                ClientHello(versions=(1,), model_id=MODEL, suites=("snni-cheetah-v3",))
            )
            await stream.next_event(30)  # ServerHello
            await stream.send(InferenceBegin(seq=0, setup=True))
            sent = 0

            async def flood() -> None:
                nonlocal sent
                chunk = Data(payload=bytes(FRAME), more=True)
                while sent < FLOOD:
                    await stream.send(chunk)
                    sent += FRAME

            flooding = asyncio.ensure_future(flood())
            reply = None
            async with asyncio.timeout(60):
                while not isinstance(reply, Error):
                    reply = await stream.next_event()
            stopped_at = sent
            flooding.cancel()
            await asyncio.gather(flooding, return_exceptions=True)
            assert reply.code == "bad_message"
            assert f"exceeds the {_pk0_bytes(demo_models)} bytes" in reply.message
            # The worker refused at the public key's bound; the loop had buffered no
            # more than the socket buffers hold (before: the whole 256 MiB).
            assert stopped_at < FLOOD // 8
            await stream.aclose()

    try:
        asyncio.run(main())
    except ConnectionLostError:  # pragma: no cover - the edge may cut before we read
        raise AssertionError("the edge cut the connection without an Error") from None


def test_a_degenerate_public_key_is_refused_with_bad_message_and_the_session_closes(
    make_settings: Any, camera_tls: Any, demo_models: Path
) -> None:
    """The edge seeds pk1; a camera answering with pk0 = 0 (its c0 mask gone) is told
    why in a coded error, and the session ends: no inference runs on that key."""

    async def main() -> None:
        async with running(make_settings(model_dir=demo_models, max_sessions=1)) as server:
            stream = await open_client(
                "127.0.0.1", server.address[1], client_context(camera_tls()), timeout=5
            )
            await stream.send(ClientHello(versions=(1,), model_id=MODEL, suites=SUITES))
            assert isinstance(await stream.next_event(30), ServerHello)
            await stream.send(InferenceBegin(seq=0, setup=True))
            seed = await stream.next_event(30)
            assert isinstance(seed, Data) and len(seed.payload) == 64 and not seed.more
            await stream.send(Data(payload=bytes(_pk0_bytes(demo_models))))  # pk0 = 0
            reply = await stream.next_event(30)
            assert isinstance(reply, Error) and reply.code == "bad_message"
            assert "public key is degenerate" in reply.message
            assert isinstance(await stream.next_event(30), ConnectionClosed)
            assert server.metrics.inferences["failed"] == 1
            await stream.aclose()

    asyncio.run(main())
