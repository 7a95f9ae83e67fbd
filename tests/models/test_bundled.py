"""The bundled MTCNN files: present, unchanged, and shaped as the detector expects."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from secfepas_sdk.models.bundled import (
    DATA_DIR,
    demo_model_dir,
    demo_model_path,
    mtcnn_paths,
    sample_video_path,
)

# sha256 printed by tools/export_mtcnn_onnx.py; update both if the export changes.
SHA256 = {
    "pnet": "334bd3c5c9e1d990af13874d4fb488cc59b3e85af78a26619ff1e9afe988f000",
    "rnet": "bff277b281b222f2ad2497307f5f50d5fe18b985a572d99a375a945cd98ede0b",
    "onet": "96b062464f866ab4885383e7346cbe5d2592e27f111a3478ba9e3b73d9a9ff53",
}


def test_files_and_licence_are_shipped() -> None:
    paths = mtcnn_paths()
    for name, path in (("pnet", paths.pnet), ("rnet", paths.rnet), ("onet", paths.onet)):
        assert hashlib.sha256(path.read_bytes()).hexdigest() == SHA256[name]
    licence = (DATA_DIR / "mtcnn" / "LICENSE.facenet-pytorch.md").read_text()
    assert "MIT License" in licence and "Timothy Esler" in licence
    assert sample_video_path().stat().st_size > 100_000


@pytest.mark.parametrize(
    ("name", "shape", "outputs"),
    [
        ("pnet", (2, 3, 37, 53), {"reg": (2, 4, 14, 22), "prob": (2, 2, 14, 22)}),
        ("rnet", (5, 3, 24, 24), {"reg": (5, 4), "prob": (5, 2)}),
        ("onet", (3, 3, 48, 48), {"reg": (3, 4), "landmarks": (3, 10), "prob": (3, 2)}),
    ],
)
def test_stage_io(name: str, shape: tuple[int, ...], outputs: dict[str, tuple[int, ...]]) -> None:
    sess = ort.InferenceSession(
        str(getattr(mtcnn_paths(), name)), providers=["CPUExecutionProvider"]
    )
    assert [i.name for i in sess.get_inputs()] == ["input"]
    x = np.random.default_rng(0).uniform(-1, 1, shape).astype(np.float32)
    got = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, {"input": x}), strict=True))
    assert {k: v.shape for k, v in got.items()} == outputs
    assert np.allclose(got["prob"].sum(axis=1), 1.0, atol=1e-5)  # softmax over face/no-face


def test_demo_model_dir_links_the_bundled_package(tmp_path: Path) -> None:
    root = demo_model_dir(tmp_path / "models")
    assert [p.name for p in root.iterdir()] == ["demo"]
    assert (root / "demo").resolve() == demo_model_path().resolve()
    assert (root / "demo" / "manifest.json").is_file()
