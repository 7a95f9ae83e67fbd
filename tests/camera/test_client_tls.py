"""A TLS certificate refusal is permanent: the camera fails at once and says why.

Real TLS on loopback against a real edge. Attempts are counted (the edge's
refusal counter, the camera's retry log), never timed.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from testkit.camera import BackgroundEdge, demo_edge

from secfepas_sdk.camera.client import RetryPolicy, SecureInferenceClient
from secfepas_sdk.certs import Pki, init_pki
from secfepas_sdk.errors import ErrorCode, TlsRefusedError
from secfepas_sdk.protocol.transport import TlsFiles

MODEL = "demo-pain-cnn"
# Back-off long enough that a retry could never go unnoticed by the counters.
RETRY = RetryPolicy(attempts=5, initial_s=0.5)


@pytest.fixture(scope="module")
def edge(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[BackgroundEdge]:
    yield from demo_edge(pki, tmp_path_factory.mktemp("edge"), max_sessions=1)


@pytest.fixture(scope="module")
def foreign(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return init_pki(tmp_path_factory.mktemp("foreign") / "site", site="someone else's CA")


def _expired_camera(pki: Pki, root: Path) -> TlsFiles:
    """A camera certificate from the right CA that expired yesterday."""
    ca_key = serialization.load_pem_private_key(pki.ca_key.read_bytes(), None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    ca = x509.load_pem_x509_certificate(pki.ca_cert.read_bytes())
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "old-camera")]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=30))
        .not_valid_after(now - dt.timedelta(days=1))
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    (root / "old.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (root / "old.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return TlsFiles(ca=pki.ca_cert, cert=root / "old.pem", key=root / "old.key")


def _refusal(
    edge: BackgroundEdge, tls: TlsFiles, caplog: pytest.LogCaptureFixture, server_name: str | None
) -> tuple[TlsRefusedError, str]:
    """Connect once with retries allowed; return the camera's error and the edge's log line."""
    caplog.set_level(logging.INFO)
    caplog.clear()
    before = edge.server.metrics.tls_refused

    async def main() -> TlsRefusedError:
        client = SecureInferenceClient(
            edge.address, tls, MODEL, server_name=server_name, retry=RETRY
        )
        with pytest.raises(TlsRefusedError) as caught:
            await client.connect()
        # The edge counts, then logs, the refusal in its own thread: wait for the log.
        for _ in range(500):
            if any("TLS handshake with" in r.getMessage() for r in caplog.records):
                break
            await asyncio.sleep(0.01)
        return caught.value

    err = asyncio.run(main())
    assert edge.server.metrics.tls_refused == before + 1  # one attempt, no retry
    retries = [r for r in caplog.records if "retry" in r.getMessage()]
    assert retries == []
    assert err.code == ErrorCode.TLS_REFUSED and not err.code.on_wire
    (logged,) = [r.getMessage() for r in caplog.records if "TLS handshake with" in r.getMessage()]
    return err, logged


def test_camera_cert_from_a_foreign_ca_fails_at_once(
    edge: BackgroundEdge, pki: Pki, foreign: Pki, caplog: pytest.LogCaptureFixture
) -> None:
    cam = foreign.camera("camera-1")
    tls = TlsFiles(ca=pki.ca_cert, cert=cam.cert, key=cam.key)
    err, logged = _refusal(edge, tls, caplog, None)
    assert str(err).startswith("the edge refused our certificate")
    assert "unknown CA" in str(err)
    assert logged.endswith(
        "the camera's certificate failed verification: "
        "unknown CA (unable to get local issuer certificate)"
    )


def test_camera_pinning_a_foreign_ca_fails_at_once(
    edge: BackgroundEdge, pki: Pki, foreign: Pki, caplog: pytest.LogCaptureFixture
) -> None:
    cam = pki.camera("camera-1")
    tls = TlsFiles(ca=foreign.ca_cert, cert=cam.cert, key=cam.key)
    err, logged = _refusal(edge, tls, caplog, None)
    assert str(err).startswith("the edge's certificate failed verification: unknown CA")
    assert "not issued by the CA this camera pins" in str(err)
    assert "the camera closed the connection during the handshake" in logged
    assert "ConnectionResetError" not in logged


def test_edge_name_mismatch_fails_at_once(
    edge: BackgroundEdge, tls: TlsFiles, caplog: pytest.LogCaptureFixture
) -> None:
    err, logged = _refusal(edge, tls, caplog, "edge.elsewhere.example")
    assert str(err).startswith("the edge's certificate failed verification: wrong name")
    assert "edge.elsewhere.example" in str(err) and "server_name" in str(err)
    assert "the camera closed the connection during the handshake" in logged


def test_expired_camera_cert_fails_at_once(
    edge: BackgroundEdge, pki: Pki, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    err, logged = _refusal(edge, _expired_camera(pki, tmp_path), caplog, None)
    assert str(err).startswith("the edge refused our certificate")
    assert "certificate expired (not valid after" in str(err)
    assert logged.endswith(
        "the camera's certificate failed verification: expired (certificate has expired)"
    )


def test_a_good_certificate_still_connects(edge: BackgroundEdge, tls: TlsFiles) -> None:
    async def main() -> None:
        client = SecureInferenceClient(edge.address, tls, MODEL, retry=RETRY)
        await client.connect()
        assert client.connected
        await client.close()

    asyncio.run(main())


def test_a_refusal_on_reconnect_mid_run_stops_the_pipeline(
    pki: Pki, foreign: Pki, tls: TlsFiles, tmp_path: Path
) -> None:
    """The edge comes back on the same port with a certificate from another CA: the
    pipeline stops with the refusal instead of failing every later frame."""
    import numpy as np

    from secfepas_sdk.camera.pipeline import CameraPipeline, PipelineConfig
    from secfepas_sdk.camera.sources import PushSource
    from secfepas_sdk.edge.settings import load_settings
    from secfepas_sdk.models.bundled import demo_model_dir

    models = demo_model_dir(tmp_path / "models")

    def settings(site: Pki, port: int) -> object:
        return load_settings(
            None,
            model_dir=models,
            ca=pki.ca_cert,  # cameras of our site are welcome on both
            cert=site.edge_cert,
            key=site.edge_key,
            port=port,
            max_sessions=1,
            metrics_enabled=False,
        )

    source = PushSource(maxsize=4)
    frame = np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    attempts = RetryPolicy(attempts=5, initial_s=0.5)

    async def main() -> tuple[int, BaseException]:
        first = BackgroundEdge(settings(pki, 0))
        first.__enter__()
        port = first.address[1]
        client = SecureInferenceClient(first.address, tls, MODEL, retry=attempts)
        pipeline = CameraPipeline(source, client, config=PipelineConfig(schedule="on-change"))
        results = pipeline.run()
        source.push(frame)
        await anext(results)  # one frame analysed through the genuine edge
        await asyncio.to_thread(first.__exit__)  # it closes our session and goes away
        impostor = BackgroundEdge(settings(foreign, port))
        impostor.__enter__()
        try:
            for _ in range(3):
                source.push(frame)
            source.end()
            with pytest.raises(TlsRefusedError) as caught:
                async for _ in results:
                    pass
            for _ in range(500):  # the edge counts the refusal in its own thread
                if impostor.server.metrics.tls_refused:
                    break
                await asyncio.sleep(0.01)
            return impostor.server.metrics.tls_refused, caught.value
        finally:
            await client.close()
            await asyncio.to_thread(impostor.__exit__)

    refused, err = asyncio.run(main())
    assert str(err).startswith("the edge's certificate failed verification: unknown CA")
    assert refused == 1  # one handshake: no retry, no attempt per later frame
