"""Certificate revocation on the real edge: a camera on the site CRL is refused in
the TLS handshake and counted; `secfepas certs revoke` plus SIGHUP revokes a camera
without restarting the edge."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path
from typing import Any

import pytest

from secfepas_sdk.certs import Pki, init_pki, issue_camera, revoke_camera
from secfepas_sdk.edge.registry import ModelRegistry, RegisteredModel
from secfepas_sdk.edge.server import Server, reload_on_sighup
from secfepas_sdk.errors import ConfigError, SecfepasError
from secfepas_sdk.protocol.events import ClientHello, Error
from secfepas_sdk.protocol.transport import TlsFiles, client_context, open_client


def _registry(tmp_path: Path) -> ModelRegistry:
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


async def _handshake(server: Server, pki: Pki, name: str) -> str:
    """'ok' once the edge answered a ClientHello (TLS passed), else the error's name."""
    cam = pki.camera(name)
    ctx = client_context(TlsFiles(ca=pki.ca_cert, cert=cam.cert, key=cam.key))
    try:
        stream = await open_client("127.0.0.1", server.address[1], ctx, timeout=5)
        await stream.send(ClientHello(versions=(1,), model_id="nope", suites=("x",)))
        reply = await stream.next_event(10)
        await stream.aclose()
    except (SecfepasError, OSError) as exc:
        return type(exc).__name__
    assert isinstance(reply, Error)  # unknown model: the TLS handshake was accepted
    return "ok"


def test_revoked_camera_is_refused_and_sighup_reloads_the_crl(
    tmp_path: Path, make_settings: Any
) -> None:
    pki = init_pki(tmp_path / "site")
    for name in ("camera-2", "camera-3"):
        issue_camera(pki.root, name)
    crl = revoke_camera(pki.root, "camera-2")
    assert crl == pki.crl and revoke_camera(pki.root, "camera-2") == crl  # idempotent
    settings = make_settings(
        ca=pki.ca_cert, cert=pki.edge_cert, key=pki.edge_key, crl=crl, model_dir=tmp_path
    )

    async def main() -> None:
        server = Server(settings, registry=_registry(tmp_path))
        await server.start()
        try:
            undo = reload_on_sighup(server)
            assert await _handshake(server, pki, "camera-1") == "ok"
            assert await _handshake(server, pki, "camera-2") != "ok"
            assert await _handshake(server, pki, "camera-3") == "ok"
            for _ in range(100):
                if server.metrics.tls_revoked == 1:
                    break
                await asyncio.sleep(0.05)
            assert server.metrics.tls_revoked == 1
            assert "secfepas_edge_tls_revoked_total 1" in server.metrics.render()
            revoke_camera(pki.root, "camera-3")  # the operator revokes one more ...
            assert await _handshake(server, pki, "camera-3") == "ok"  # not read yet
            reloaded = asyncio.Event()
            original = server.reload_tls

            def reload() -> bool:
                done = original()
                reloaded.set()
                return done

            server.reload_tls = reload  # type: ignore[method-assign]
            undo()
            undo = reload_on_sighup(server)
            os.kill(os.getpid(), signal.SIGHUP)  # ... and sends SIGHUP
            async with asyncio.timeout(5):
                await reloaded.wait()
            assert await _handshake(server, pki, "camera-3") != "ok"
            assert await _handshake(server, pki, "camera-1") == "ok"
            undo()
        finally:
            await server.stop(2.0)

    asyncio.run(main())


def test_crl_errors_are_clear(tmp_path: Path, make_settings: Any) -> None:
    pki = init_pki(tmp_path / "site")
    with pytest.raises(ConfigError, match="no certificate for camera"):
        revoke_camera(pki.root, "camera-9")
    other = init_pki(tmp_path / "other")
    foreign = revoke_camera(other.root, "camera-1")
    pki.crl.write_bytes(foreign.read_bytes())
    with pytest.raises(ConfigError, match="not signed by this site's CA"):
        revoke_camera(pki.root, "camera-1")
    bad = tmp_path / "bad.pem"
    bad.write_text("not a CRL")
    settings = make_settings(ca=pki.ca_cert, cert=pki.edge_cert, key=pki.edge_key, crl=bad)
    server = Server(settings, registry=_registry(tmp_path))
    with pytest.raises(ConfigError, match="cannot load the CRL"):
        server._tls_context()
