"""Model pinning against a real edge: the camera's own public package must match the
edge's manifest and plan exactly, or the session ends before any pixel is shared."""

from __future__ import annotations

import asyncio
import hashlib
import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from testkit.camera import BackgroundEdge, demo_edge

from secfepas_sdk.camera.client import RetryPolicy, SecureInferenceClient
from secfepas_sdk.certs import Pki
from secfepas_sdk.errors import ModelPackageError
from secfepas_sdk.models.bundled import demo_model_path
from secfepas_sdk.models.package import ARCHITECTURE, MANIFEST, PLAN
from secfepas_sdk.protocol.transport import TlsFiles

MODEL = "demo-pain-cnn"


@pytest.fixture(scope="module")
def edge(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[BackgroundEdge]:
    yield from demo_edge(pki, tmp_path_factory.mktemp("edge"), max_sessions=2)


def _public_copy(dest: Path, **manifest_changes: object) -> Path:
    """The demo package's public files only (what a camera installs), optionally edited."""
    dest.mkdir()
    for name in (ARCHITECTURE, PLAN):
        shutil.copy(demo_model_path() / name, dest / name)
    manifest = json.loads((demo_model_path() / MANIFEST).read_text())
    manifest.update(manifest_changes)
    (dest / MANIFEST).write_text(json.dumps(manifest))
    return dest


def _connect(edge: BackgroundEdge, tls: TlsFiles, package: Path) -> SecureInferenceClient:
    return SecureInferenceClient(
        edge.address, tls, MODEL, model_package=package, retry=RetryPolicy(attempts=1)
    )


def test_matching_pin_runs_inference(edge: BackgroundEdge, tls: TlsFiles, tmp_path: Path) -> None:
    async def main() -> None:
        client = _connect(edge, tls, _public_copy(tmp_path / "pkg"))
        x = np.zeros((1, 3, 64, 64), np.float32)
        a = await client.infer(x)
        assert abs(sum(a.probabilities) - 1.0) < 1e-9
        await client.close()

    asyncio.run(main())


def test_manifest_mismatch_is_refused_and_the_edge_is_told(
    edge: BackgroundEdge, tls: TlsFiles, tmp_path: Path
) -> None:
    contract = json.loads((demo_model_path() / MANIFEST).read_text())["preprocess"]
    contract["mean"] = [0.0, 0.0, 0.0]
    package = _public_copy(tmp_path / "pkg", version="9.9.9", preprocess=contract)

    async def main() -> None:
        client = _connect(edge, tls, package)
        with pytest.raises(
            ModelPackageError, match="differs from the pinned package in: preprocess, version"
        ):
            await client.connect()
        assert not client.connected
        errors = edge.server.metrics.errors
        deadline = time.monotonic() + 10.0  # the camera told the edge why (Error{model_mismatch})
        while errors["peer_model_mismatch"] != 1 and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        assert errors["peer_model_mismatch"] == 1

    asyncio.run(main())


def test_plan_mismatch_is_refused(edge: BackgroundEdge, tls: TlsFiles, tmp_path: Path) -> None:
    package = _public_copy(tmp_path / "pkg")
    plan = json.loads((package / PLAN).read_text())
    plan["softmax"] = not plan["softmax"]  # a different model behind the same id
    (package / PLAN).write_text(json.dumps(plan))
    manifest = json.loads((package / MANIFEST).read_text())
    manifest["hashes"][PLAN] = hashlib.sha256((package / PLAN).read_bytes()).hexdigest()
    (package / MANIFEST).write_text(json.dumps(manifest))

    async def main() -> None:
        client = _connect(edge, tls, package)
        with pytest.raises(ModelPackageError, match=r"plan .* differs from the pinned package"):
            await client.connect()

    asyncio.run(main())


def test_package_of_another_model_is_refused_at_construction(tls: TlsFiles, tmp_path: Path) -> None:
    package = _public_copy(tmp_path / "pkg", model_id="other-model")
    with pytest.raises(ModelPackageError, match="holds 'other-model'"):
        SecureInferenceClient("127.0.0.1:1", tls, MODEL, model_package=package)


def test_no_pin_accepts_the_edge(edge: BackgroundEdge, tls: TlsFiles) -> None:
    """Without --model-package the camera trusts the edge's (self-consistent) model."""

    async def main() -> None:
        client = SecureInferenceClient(edge.address, tls, MODEL, retry=RetryPolicy(attempts=1))
        await client.connect()
        assert client.pinned is None and client.connected
        await client.close()

    asyncio.run(main())
