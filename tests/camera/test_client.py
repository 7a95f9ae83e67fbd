"""SecureInferenceClient against a real edge (background thread, real TLS, real
secure inference): address parsing, back-off, cancellation and timeouts."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from testkit.camera import BackgroundEdge, demo_edge, edge_started_computing

from secfepas_sdk.camera.client import (
    ClientTimeouts,
    RetryPolicy,
    SecureInferenceClient,
    parse_address,
)
from secfepas_sdk.certs import Pki
from secfepas_sdk.errors import ConnectionLostError, TlsRefusedError
from secfepas_sdk.protocol.transport import TlsFiles

MODEL = "demo-pain-cnn"


@pytest.fixture(scope="module")
def edge(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[BackgroundEdge]:
    yield from demo_edge(pki, tmp_path_factory.mktemp("edge"), max_sessions=2)


@pytest.fixture(scope="module")
def x() -> Any:
    return np.random.default_rng(1).standard_normal((1, 3, 64, 64)).astype(np.float32)


def test_parse_address() -> None:
    assert parse_address("edge.local:7443") == ("edge.local", 7443)
    assert parse_address("[::1]:7443") == ("::1", 7443)
    assert parse_address(("10.0.0.1", 1)) == ("10.0.0.1", 1)
    for bad in ("edge.local", "edge:0", ":7443", "edge:http"):
        with pytest.raises(ValueError):
            parse_address(bad)


def test_backoff_grows_with_jitter_and_is_capped() -> None:
    policy = RetryPolicy(attempts=10, initial_s=1.0, max_s=8.0, multiplier=2.0)
    delays = [policy.delay(k) for k in range(1, 8)]
    for k, d in enumerate(delays, start=1):
        base = min(8.0, 2.0 ** (k - 1))
        assert 0.8 * base - 1e-9 <= d <= 1.2 * base + 1e-9
    with pytest.raises(ValueError):
        RetryPolicy(attempts=0)


def test_infer_connects_lazily_and_reports_cost(
    edge: BackgroundEdge, tls: TlsFiles, x: Any
) -> None:
    async def main() -> None:
        client = SecureInferenceClient(edge.address, tls, MODEL)
        assert not client.connected and client.last_stats is None
        a = await client.infer(x, frame_time=1_700_000_012.5, frame_index=3)
        assert client.connected
        stats = client.last_stats  # SNNI payload only: the frames around it cost a little more
        assert stats is not None and stats.rounds > 0 and len(stats.by_label) > 1
        assert 0 < stats.bytes_sent < a.bytes_sent and 0 < stats.bytes_received < a.bytes_received
        assert sum(v.rounds for v in stats.by_label.values()) == stats.rounds
        assert (a.frame_time, a.frame_index, a.camera_id) == (1_700_000_012.5, 3, "camera-1")
        assert a.bytes_sent > 0 and a.bytes_received > 0 and a.seconds > 0
        assert abs(sum(a.probabilities) - 1.0) < 1e-9
        await client.close()
        assert not client.connected

    asyncio.run(main())


def test_cancellation_aborts_session_and_next_call_recovers(
    edge: BackgroundEdge, tls: TlsFiles, x: Any
) -> None:
    async def main() -> None:
        client = SecureInferenceClient(edge.address, tls, MODEL)
        first = await client.infer(x)
        computing = edge_started_computing(client)
        task = asyncio.ensure_future(client.infer(x))
        await computing.wait()  # mid-inference, however loaded the machine is
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert not client.connected
        errors = edge.server.metrics.errors
        deadline = time.monotonic() + 60.0  # the edge was told why (Error{cancelled}) and logged it
        while errors["peer_cancelled"] != 1 and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        assert errors["peer_cancelled"] == 1
        again = await client.infer(x)
        np.testing.assert_allclose(again.probabilities, first.probabilities, atol=1e-3)
        await client.close()

    asyncio.run(main())


def test_inference_timeout_is_a_clear_error(edge: BackgroundEdge, tls: TlsFiles, x: Any) -> None:
    async def main() -> None:
        client = SecureInferenceClient(
            edge.address, tls, MODEL, timeouts=ClientTimeouts(inference_s=0.05)
        )
        with pytest.raises(ConnectionLostError) as exc:
            await client.infer(x)
        assert exc.value.code == "timeout"
        assert not client.connected

    asyncio.run(main())


def test_wrong_server_name_is_refused(edge: BackgroundEdge, tls: TlsFiles) -> None:
    async def main() -> None:
        client = SecureInferenceClient(
            edge.address,
            tls,
            MODEL,
            server_name="not-the-edge.example",
            retry=RetryPolicy(attempts=1),
        )
        with pytest.raises(TlsRefusedError) as exc:
            await client.connect()
        assert "wrong name" in str(exc.value) and "Hostname mismatch" in str(exc.value)

    asyncio.run(main())


def test_missing_tls_files(tmp_path: Path) -> None:
    from secfepas_sdk.errors import ConfigError

    with pytest.raises(ConfigError):
        SecureInferenceClient(
            "127.0.0.1:1",
            TlsFiles(ca=tmp_path / "a", cert=tmp_path / "b", key=tmp_path / "c"),
            MODEL,
        )
