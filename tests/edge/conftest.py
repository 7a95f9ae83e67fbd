"""Fixtures for the edge tests: a throwaway PKI and settings for a loopback server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from secfepas_sdk.certs import Pki, init_pki, issue_camera
from secfepas_sdk.edge.settings import EdgeSettings, load_settings
from secfepas_sdk.protocol.transport import TlsFiles


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    pki = init_pki(tmp_path_factory.mktemp("pki") / "site")
    for name in ("camera-2", "camera-3", "camera-4"):
        issue_camera(pki.root, name)
    return pki


@pytest.fixture(scope="session")
def foreign_pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return init_pki(tmp_path_factory.mktemp("pki") / "other", site="another site CA")


@pytest.fixture(scope="session")
def camera_tls(pki: Pki) -> Any:
    """camera_tls(name) -> the TLS files of one camera of the test site."""

    def files(name: str = "camera-1") -> TlsFiles:
        cam = pki.camera(name)
        return TlsFiles(ca=pki.ca_cert, cert=cam.cert, key=cam.key)

    return files


@pytest.fixture
def make_settings(pki: Pki, tmp_path: Path) -> Any:
    def make(**overrides: Any) -> EdgeSettings:
        values: dict[str, Any] = {
            "model_dir": tmp_path,
            "ca": pki.ca_cert,
            "cert": pki.edge_cert,
            "key": pki.edge_key,
            "port": 0,
            "metrics_port": 0,
        }
        values.update(overrides)
        return load_settings(None, **values)

    return make


@pytest.fixture(scope="session")
def demo_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model directory holding the bundled demo package (verified by the registry)."""
    from secfepas_sdk.models.bundled import demo_model_dir

    return demo_model_dir(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="session")
def demo_input() -> Any:
    import numpy as np

    return np.random.default_rng(7).standard_normal((1, 3, 64, 64)).astype(np.float32)


@pytest.fixture(scope="session")
def reference_probabilities(demo_input: Any) -> Any:
    """What the plaintext float model says (edge-private reference.onnx, test only)."""
    import numpy as np
    import onnxruntime as ort

    from secfepas_sdk.models.bundled import demo_model_path

    sess = ort.InferenceSession(str(demo_model_path() / "private" / "reference.onnx"))
    logits = sess.run(None, {sess.get_inputs()[0].name: demo_input})[0].reshape(-1)
    e = np.exp(logits - logits.max())
    return e / e.sum()
