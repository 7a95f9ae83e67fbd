"""The edge's session forwards SNNI traffic chunk by chunk: the event loop never
joins a message, and the worker refuses a message larger than the protocol step
allows (from the plan) before it has read the excess."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from testkit.edge import running

from secfepas_sdk.edge import session as edge_session
from secfepas_sdk.edge.session import WorkerFailed, settle
from secfepas_sdk.errors import (
    ConnectionLostError,
    ErrorCode,
    LocalProtocolError,
    RemoteProtocolError,
)
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


def _ended(error: BaseException | None) -> asyncio.Future[None]:
    future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)
    return future


def test_an_inference_ends_on_the_cause_when_both_directions_fail_in_one_turn() -> None:
    """The camera's EOF fails its stream; the worker's seed, forwarded in the same loop
    turn, then cannot be sent (LocalProtocolError). The session must end on the EOF, a
    coded peer error the edge counts, not on the consequence (which went uncounted:
    tests/edge/test_kill_every_step.py, send InferenceBegin)."""

    async def main() -> None:
        eof = RemoteProtocolError("the peer closed the stream", ErrorCode.UNEXPECTED_EOF)
        consequence = LocalProtocolError("cannot send DATA in state failed", ErrorCode.LOCAL_MISUSE)
        with pytest.raises(RemoteProtocolError) as raised:
            settle(_ended(eof), _ended(consequence))
        assert raised.value is eof
        # The worker refused the camera's data and left; the camera's direction then
        # failed writing to it: the refusal is the cause.
        refused = WorkerFailed("too big", "bad_message", public=True)
        gone = WorkerFailed("the worker process ended unexpectedly", "internal")
        with pytest.raises(WorkerFailed) as raised_by_worker:
            settle(_ended(gone), _ended(refused))
        assert raised_by_worker.value is refused
        pending: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        settle(pending, _ended(None))  # the inference ended: nothing to raise
        with pytest.raises(WorkerFailed):
            settle(pending, _ended(WorkerFailed("boom", "inference_failed")))
        pending.cancel()

    asyncio.run(main())


def test_an_internal_error_in_a_session_is_counted_and_the_camera_told(
    make_settings: Any, camera_tls: Any, demo_models: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug of ours inside a session (here: the session's run raising RuntimeError)
    still ends it coded: counted as internal, the camera gets Error(internal) and the
    connection closes, instead of an exception escaping the connection's task."""

    async def broken(self: Any, send_hello: Any) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(edge_session.EdgeSession, "run", broken)

    async def main() -> None:
        async with running(make_settings(model_dir=demo_models, max_sessions=1)) as server:
            stream = await open_client(
                "127.0.0.1", server.address[1], client_context(camera_tls()), timeout=5
            )
            await stream.send(ClientHello(versions=(1,), model_id=MODEL, suites=SUITES))
            reply = await stream.next_event(30)
            assert isinstance(reply, Error) and reply.code == "internal"
            assert "a bug" not in reply.message
            assert isinstance(await stream.next_event(30), ConnectionClosed)
            assert server.metrics.errors["internal"] == 1
            await stream.aclose()

    asyncio.run(main())
