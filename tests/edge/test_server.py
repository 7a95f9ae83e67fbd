"""The edge Server and camera client over real TLS sockets on loopback, with real
secure inference of the bundled demo model in worker processes."""

from __future__ import annotations

import asyncio
import glob
import logging
import os
import signal
import socket
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from testkit.alerts import wait_for
from testkit.camera import edge_started_computing
from testkit.edge import ONE_TRY, running

from secfepas_sdk.camera.client import SecureInferenceClient
from secfepas_sdk.edge.server import Server, stop_on_signals
from secfepas_sdk.errors import (
    ConnectionLostError,
    InvalidValueError,
    PeerError,
    RemoteProtocolError,
)

MODEL = "demo-pain-cnn"


def test_mutual_tls_secure_inference_matches_plaintext_model(
    make_settings: Any,
    camera_tls: Any,
    demo_models: Path,
    demo_input: Any,
    reference_probabilities: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)

    async def main() -> list[Any]:
        async with running(make_settings(model_dir=demo_models)) as server:
            async with SecureInferenceClient(server.address, camera_tls(), MODEL) as client:
                assert client.manifest["model_id"] == MODEL
                out = [await client.infer(demo_input, frame_index=i) for i in range(2)]
            m = server.metrics
            assert m.inferences["ok"] == 2 and m.sessions_total == 1
            assert m.bytes_total("in") > 1_000_000 and m.bytes_total("out") > 100_000
            text = m.render()
            assert 'secfepas_edge_inferences_total{outcome="ok"} 2' in text
            return out

    results = asyncio.run(main())
    for a in results:
        assert a.camera_id == "camera-1" and a.model_id == MODEL
        np.testing.assert_allclose(a.probabilities, reference_probabilities, atol=0.02)
        assert a.level == int(np.argmax(reference_probabilities))
        assert a.bytes_sent > a.bytes_received > 0
    # The session setup (HE keys, base OTs) happens once, in the first inference.
    assert results[0].seconds > results[1].seconds * 0.5
    # Logs name sessions and cameras, never results.
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "camera-1" in text
    assert f"{results[0].probabilities[0]:.4f}" not in text


def test_camera_and_edge_agree_on_ferret_over_tls(
    make_settings: Any,
    camera_tls: Any,
    demo_models: Path,
    demo_input: Any,
    reference_probabilities: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A camera with the defaults proposes Ferret first, the edge allows both: both
    engines run Ferret (an engine on another extension would fail at the OT setup), and
    the result is the plaintext model's."""
    caplog.set_level(logging.INFO, logger="secfepas_sdk")

    async def main() -> Any:
        async with running(make_settings(model_dir=demo_models)) as server:
            client = SecureInferenceClient(server.address, camera_tls(), MODEL)
            assert client.suites == ("snni-cheetah-ferret-v5", "snni-cheetah-v3")
            async with client:
                a = await client.infer(demo_input)
                assert client.ot_extension == "ferret"
                assert client._runtime is not None and client._runtime.ot_extension == "ferret"
            assert server.metrics.inferences["ok"] == 1
            return a

    a = asyncio.run(main())
    np.testing.assert_allclose(a.probabilities, reference_probabilities, atol=0.02)
    assert any("suite snni-cheetah-ferret-v5" in r.getMessage() for r in caplog.records)


def test_softspoken_only_edges_and_cameras_still_meet_the_new_defaults(
    make_settings: Any,
    camera_tls: Any,
    demo_models: Path,
    demo_input: Any,
    reference_probabilities: Any,
) -> None:
    """An edge that allows only SoftSpokenOT serves a camera with the defaults (its
    second proposal), and a default edge serves a camera that proposes only
    snni-cheetah-v3 (as cameras did before Ferret became the default)."""

    async def main(settings: Any, ot: tuple[str, ...] | None) -> Any:
        async with running(settings) as server:
            client = SecureInferenceClient(server.address, camera_tls(), MODEL, ot_extensions=ot)
            async with client:
                a = await client.infer(demo_input)
                assert client.ot_extension == "softspoken"
            return a

    old_edge = make_settings(model_dir=demo_models, ot_extensions="softspoken")
    for settings, ot in ((old_edge, None), (make_settings(model_dir=demo_models), ("softspoken",))):
        a = asyncio.run(main(settings, ot))
        np.testing.assert_allclose(a.probabilities, reference_probabilities, atol=0.02)


def test_an_ot_extension_the_edge_does_not_allow_is_refused(
    make_settings: Any, camera_tls: Any, demo_models: Path
) -> None:
    """An edge that allows only SoftSpokenOT refuses a Ferret-only camera at the hello
    (no_common_suite, naming what it allows; the camera does not retry), and a camera
    asked for an unknown extension refuses before connecting."""

    async def main() -> None:
        settings = make_settings(model_dir=demo_models, ot_extensions="softspoken")
        async with running(settings) as server:
            client = SecureInferenceClient(
                server.address, camera_tls(), MODEL, ot_extensions=("ferret",), retry=ONE_TRY
            )
            with pytest.raises(PeerError) as exc:
                async with asyncio.timeout(30):
                    await client.connect()
            assert exc.value.code == "no_common_suite"
            assert "snni-cheetah-v3" in str(exc.value)
            assert server.metrics.errors["no_common_suite"] == 1
            assert server.metrics.sessions_total == 0

    asyncio.run(main())
    with pytest.raises(InvalidValueError, match="unknown OT extension 'ferrett'"):
        SecureInferenceClient(("127.0.0.1", 1), camera_tls(), MODEL, ot_extensions=("ferrett",))


def test_busy_when_sessions_and_queue_are_full(
    make_settings: Any,
    camera_tls: Any,
    demo_models: Path,
    demo_input: Any,
    reference_probabilities: Any,
) -> None:
    async def main() -> None:
        settings = make_settings(model_dir=demo_models, max_sessions=1, max_queue=1)
        async with running(settings) as server:
            first = SecureInferenceClient(server.address, camera_tls("camera-1"), MODEL)
            await first.connect()
            queued = SecureInferenceClient(server.address, camera_tls("camera-2"), MODEL)
            waiting = asyncio.ensure_future(queued.connect())
            for _ in range(500):  # up to 10 s: a TLS handshake under load
                if server.metrics.sessions_queued == 1:
                    break
                await asyncio.sleep(0.02)
            assert server.metrics.sessions_queued == 1
            third = SecureInferenceClient(
                server.address, camera_tls("camera-3"), MODEL, retry=ONE_TRY
            )
            with pytest.raises(PeerError) as exc:
                await third.connect()
            assert exc.value.code == "busy"
            assert "session slots" in str(exc.value)
            assert server.metrics.errors["busy"] == 1
            assert not waiting.done()
            await first.close()  # frees the slot: the queued camera is admitted
            async with asyncio.timeout(60):
                await waiting
            a = await queued.infer(demo_input)
            np.testing.assert_allclose(a.probabilities, reference_probabilities, atol=0.02)
            await queued.close()

    asyncio.run(main())


def test_killed_connection_mid_inference(
    make_settings: Any,
    camera_tls: Any,
    demo_models: Path,
    demo_input: Any,
    reference_probabilities: Any,
) -> None:
    """The camera gets a clear error and can retry; the edge keeps serving others."""

    async def main() -> None:
        async with running(make_settings(model_dir=demo_models, max_sessions=2)) as server:
            victim = SecureInferenceClient(server.address, camera_tls("camera-1"), MODEL)
            other = SecureInferenceClient(server.address, camera_tls("camera-2"), MODEL)
            await victim.infer(demo_input)  # session set up
            computing = edge_started_computing(victim)
            task = asyncio.ensure_future(victim.infer(demo_input))
            other_task = asyncio.ensure_future(other.infer(demo_input))
            await computing.wait()  # the edge is inside this inference
            assert not task.done()
            victim._stream.abort()  # type: ignore[union-attr]  # the network dies
            with pytest.raises((ConnectionLostError, RemoteProtocolError)) as exc:
                await task
            assert "connection" in str(exc.value).lower() or exc.value.code in (
                "connection_lost",
                "unexpected_eof",
            )
            assert not victim.connected
            b = await other_task
            np.testing.assert_allclose(b.probabilities, reference_probabilities, atol=0.02)
            retry = await victim.infer(demo_input)  # reconnects, sets up again
            np.testing.assert_allclose(retry.probabilities, reference_probabilities, atol=0.02)
            assert victim.reconnects == 1
            for _ in range(200):  # the edge counts just after it sent InferenceEnd
                if (
                    server.metrics.inferences["failed"] >= 1
                    and server.metrics.inferences["ok"] >= 3
                ):
                    break
                await asyncio.sleep(0.05)
            assert server.metrics.inferences["failed"] == 1
            assert server.metrics.inferences["ok"] == 3
            await victim.close()
            await other.close()

    asyncio.run(main())


def test_graceful_stop_finishes_inflight_inference(
    make_settings: Any,
    camera_tls: Any,
    demo_models: Path,
    demo_input: Any,
    reference_probabilities: Any,
) -> None:
    async def main() -> None:
        server = Server(make_settings(model_dir=demo_models))
        await server.start()
        forever = asyncio.ensure_future(server.serve_forever())
        client = SecureInferenceClient(server.address, camera_tls(), MODEL, retry=ONE_TRY)
        await client.infer(demo_input)
        computing = edge_started_computing(client)
        task = asyncio.ensure_future(client.infer(demo_input))
        await computing.wait()
        await server.stop(grace_s=60)
        assessment = await task  # finished although stop() was called mid-inference
        np.testing.assert_allclose(assessment.probabilities, reference_probabilities, atol=0.02)
        async with asyncio.timeout(1):
            await forever  # serve_forever() returns once stop() completes
        # The session was closed after that inference, and nothing listens any more.
        with pytest.raises((ConnectionLostError, PeerError)):
            await client.infer(demo_input)
        await client.close()

    asyncio.run(main())


def test_stop_with_short_grace_cuts_inflight_inference(
    make_settings: Any, camera_tls: Any, demo_models: Path, demo_input: Any
) -> None:
    async def main() -> None:
        server = Server(make_settings(model_dir=demo_models))
        await server.start()
        client = SecureInferenceClient(server.address, camera_tls(), MODEL, retry=ONE_TRY)
        await client.connect()
        computing = edge_started_computing(client)
        task = asyncio.ensure_future(client.infer(demo_input))  # includes the slow setup
        await computing.wait()
        async with asyncio.timeout(30):
            await server.stop(grace_s=0.1)
        with pytest.raises((PeerError, ConnectionLostError, RemoteProtocolError)) as exc:
            await task
        assert exc.value.code in ("shutting_down", "connection_lost", "unexpected_eof")

    before = set(_he_scratch_files())
    asyncio.run(main())
    # The killed worker left no HE scratch behind (it only ever used anonymous memory).
    assert set(_he_scratch_files()) - before == set()


def _he_scratch_files() -> list[str]:
    """Files an HE engine could leave in /dev/shm or the temp dir (secfepas-he-*)."""
    found = []
    for base in ("/dev/shm", tempfile.gettempdir()):
        found += glob.glob(os.path.join(base, "secfepas-he-*"))
    return found


def test_idle_timeout_then_transparent_reconnect(
    make_settings: Any,
    camera_tls: Any,
    demo_models: Path,
    demo_input: Any,
    reference_probabilities: Any,
) -> None:
    async def main() -> None:
        async with running(make_settings(model_dir=demo_models, idle_timeout_s=0.5)) as server:
            client = SecureInferenceClient(server.address, camera_tls(), MODEL)
            await client.connect()
            first_session = client.session_id
            timed_out = await asyncio.to_thread(
                wait_for, lambda: server.metrics.errors["timeout"] == 1, 30.0
            )
            assert timed_out  # the edge ended the idle session
            a = await client.infer(demo_input)  # stale session: one transparent retry
            np.testing.assert_allclose(a.probabilities, reference_probabilities, atol=0.02)
            assert client.session_id != first_session
            await client.close()

    asyncio.run(main())


def test_garbage_snni_data_fails_that_session_only(
    make_settings: Any,
    camera_tls: Any,
    demo_models: Path,
    demo_input: Any,
    reference_probabilities: Any,
) -> None:
    """An authenticated camera sending nonsense inside DATA frames gets a clear error;
    the worker survives (or is replaced) and other cameras are served."""
    import os

    from secfepas_sdk.protocol.events import ClientHello, Data, Error, InferenceBegin
    from secfepas_sdk.protocol.transport import client_context, open_client

    async def main() -> None:
        async with running(make_settings(model_dir=demo_models, max_sessions=1)) as server:
            stream = await open_client(
                "127.0.0.1", server.address[1], client_context(camera_tls()), timeout=5
            )
            await stream.send(
                ClientHello(versions=(1,), model_id=MODEL, suites=("snni-cheetah-v3",))
            )
            await stream.next_event(30)
            await stream.send(InferenceBegin(seq=0, setup=True))
            for size in (7, 100_000, 3):
                await stream.send(Data(payload=os.urandom(size)))
            reply = None
            async with asyncio.timeout(60):
                while not isinstance(reply, Error):
                    reply = await stream.next_event()
            assert reply.code in ("bad_message", "inference_failed", "internal")
            await stream.aclose()
            client = SecureInferenceClient(server.address, camera_tls("camera-2"), MODEL)
            a = await client.infer(demo_input)
            np.testing.assert_allclose(a.probabilities, reference_probabilities, atol=0.02)
            await client.close()

    asyncio.run(main())


def test_async_with_and_sigterm_stop_the_server_gracefully(
    make_settings: Any, demo_models: Path
) -> None:
    """The documented edge program: serve_forever() returns after SIGTERM, nothing listens."""

    async def main() -> tuple[str, int]:
        async with Server(make_settings(model_dir=demo_models), grace_s=5.0) as server:
            undo = stop_on_signals(server)
            try:
                address = server.address
                loop = asyncio.get_running_loop()
                loop.call_soon(os.kill, os.getpid(), signal.SIGTERM)
                async with asyncio.timeout(30):
                    await server.serve_forever()
            finally:
                undo()
        return address

    host, port = asyncio.run(main())
    with pytest.raises(OSError):
        socket.create_connection((host, port), timeout=2).close()
