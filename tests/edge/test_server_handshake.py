"""The real edge Server on loopback, before any crypto: TLS refusals (logged with
the reason), protocol version negotiation, unknown models and worker failures."""

from __future__ import annotations

import asyncio
import logging
import ssl
from pathlib import Path
from typing import Any

import pytest
from testkit.edge import ONE_TRY, running

from secfepas_sdk.camera.client import RetryPolicy, SecureInferenceClient
from secfepas_sdk.certs import Pki
from secfepas_sdk.edge.registry import ModelRegistry, RegisteredModel
from secfepas_sdk.errors import ConnectionLostError, PeerError
from secfepas_sdk.protocol.events import ClientHello, Error
from secfepas_sdk.protocol.transport import TlsFiles, client_context, open_client


def broken_registry(tmp_path: Path) -> ModelRegistry:
    """A registry entry whose package is not there: the worker cannot load it."""
    return ModelRegistry(
        [
            RegisteredModel(
                model_id="ghost",
                version="1",
                path=tmp_path / "missing-package",
                manifest={"model_id": "ghost"},
                plan={},
            )
        ]
    )


def test_tls_refusals_are_logged_with_reason(
    make_settings: Any,
    pki: Pki,
    foreign_pki: Pki,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="secfepas_sdk.edge")

    async def main() -> None:
        async with running(make_settings(), broken_registry(tmp_path), grace_s=2.0) as server:
            _, port = server.address
            no_cert = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            no_cert.minimum_version = ssl.TLSVersion.TLSv1_3
            no_cert.load_verify_locations(cafile=str(pki.ca_cert))
            foreign = foreign_pki.camera("camera-1")
            foreign_ctx = client_context(
                TlsFiles(ca=pki.ca_cert, cert=foreign.cert, key=foreign.key)
            )
            for ctx in (no_cert, foreign_ctx):
                with pytest.raises(Exception) as exc:
                    stream = await open_client("127.0.0.1", port, ctx, timeout=5)
                    await stream.send(ClientHello(versions=(1,), model_id="ghost", suites=("x",)))
                    await stream.next_event(5)
                assert not isinstance(exc.value, AssertionError)
            for _ in range(200):
                if server.metrics.tls_refused == 2:
                    break
                await asyncio.sleep(0.05)
            assert server.metrics.tls_refused == 2

    asyncio.run(main())
    refusals = [r.getMessage() for r in caplog.records if "TLS handshake" in r.getMessage()]
    assert len(refusals) == 2
    assert "CERTIFICATE" in refusals[0].upper()  # no certificate presented
    assert "certificate" in refusals[1].lower()  # unknown CA
    assert not any("ServerHello" in r.getMessage() for r in caplog.records)


def test_version_mismatch_is_clear_on_both_sides(
    make_settings: Any, camera_tls: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="secfepas_sdk.edge")

    async def main() -> Error:
        async with running(make_settings(), broken_registry(tmp_path), grace_s=2.0) as server:
            _, port = server.address
            stream = await open_client("127.0.0.1", port, client_context(camera_tls()), timeout=5)
            await stream.send(ClientHello(versions=(2, 3), model_id="ghost", suites=("x",)))
            reply = await stream.next_event(5)
            await stream.aclose()
            assert server.metrics.errors["version_mismatch"] == 1
            assert isinstance(reply, Error)
            return reply

    reply = asyncio.run(main())
    assert reply.code == "version_mismatch"
    assert "[1]" in reply.message and "[2, 3]" in reply.message
    assert any("version_mismatch" in r.getMessage() for r in caplog.records)


def test_unknown_model_is_refused_without_retrying(
    make_settings: Any, camera_tls: Any, tmp_path: Path
) -> None:
    async def main() -> None:
        async with running(make_settings(), broken_registry(tmp_path), grace_s=2.0) as server:
            client = SecureInferenceClient(
                server.address,
                camera_tls(),
                "no-such-model",
                retry=RetryPolicy(attempts=5, initial_s=5.0),
            )
            with pytest.raises(PeerError) as exc:
                async with asyncio.timeout(10):  # 5 attempts with back-off would exceed it
                    await client.connect()
            assert exc.value.code == "unknown_model"
            assert "ghost" in str(exc.value)

    asyncio.run(main())


def test_worker_that_cannot_load_gives_internal_error(
    make_settings: Any, camera_tls: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="secfepas_sdk.edge")

    async def main() -> None:
        async with running(make_settings(), broken_registry(tmp_path), grace_s=2.0) as server:
            client = SecureInferenceClient(server.address, camera_tls(), "ghost", retry=ONE_TRY)
            with pytest.raises(PeerError) as exc:
                await client.connect()
            assert exc.value.code == "internal"
            assert server.metrics.errors["internal"] == 1
            assert server.metrics.sessions_active == 0

    asyncio.run(main())
    assert any("model could not be loaded" in r.getMessage() for r in caplog.records)


def test_connection_refused_is_retried_then_reported(camera_tls: Any) -> None:
    async def main() -> None:
        client = SecureInferenceClient(
            "127.0.0.1:1", camera_tls(), "m", retry=RetryPolicy(attempts=3, initial_s=0.01)
        )
        with pytest.raises(ConnectionLostError):
            await client.connect()

    asyncio.run(main())


def test_metrics_listener_follows_the_setting(make_settings: Any, tmp_path: Path) -> None:
    async def main() -> tuple[int | None, int | None]:
        async with running(make_settings(), broken_registry(tmp_path), grace_s=2.0) as on:
            with_metrics = on.metrics_port
        async with running(
            make_settings(metrics_enabled=False), broken_registry(tmp_path), grace_s=2.0
        ) as off:
            without = off.metrics_port
        return with_metrics, without

    with_metrics, without = asyncio.run(main())
    assert with_metrics is not None and with_metrics > 0
    assert without is None
