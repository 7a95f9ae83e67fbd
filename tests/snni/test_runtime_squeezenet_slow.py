"""Full SqueezeNet 1.1 at 224x224, both parties as processes over loopback TCP.

Tolerance (documented in docs/snni-he.md): argmax equal, and max |logit error|
<= 0.01 * max|plain logit| + 0.02 (FP16 weights, f = 12 truncations).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort
import pytest
from skimage import data

from secfepas_sdk.cli.selftest import run_two_processes
from secfepas_sdk.cli.snni import preprocess_image
from secfepas_sdk.models.importer import import_onnx
from secfepas_sdk.models.package import load_public

pytestmark = pytest.mark.slow


def test_squeezenet_secure_matches_plaintext(squeezenet_model, tmp_path: Path) -> None:
    onnx_path = tmp_path / "squeezenet.onnx"
    onnx_path.write_bytes(squeezenet_model.SerializeToString())
    pkg = tmp_path / "pkg"
    import_onnx(onnx_path, pkg, model_id="squeezenet11", class_names=["a", "b", "c", "d"])
    manifest = load_public(pkg).manifest
    img = tmp_path / "astronaut.png"
    cv2.imwrite(str(img), cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR))
    face = preprocess_image(str(img), manifest)
    # A random image: uniform pixels, normalised (the plan's public input range).
    mean = np.asarray(manifest.mean).reshape(1, -1, 1, 1)
    std = np.asarray(manifest.std).reshape(1, -1, 1, 1)
    pixels = np.random.default_rng(1).random(manifest.input_shape)
    rand = ((pixels - mean) / std).astype(np.float32)
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    for x in (face, rand):
        plain = sess.run(None, {"input": x})[0].reshape(-1)
        run = run_two_processes(pkg, x)
        assert np.argmax(run.logits) == np.argmax(plain)
        assert np.abs(run.logits - plain).max() <= 0.01 * np.abs(plain).max() + 0.02
        assert run.client["peak_rss_mb"] < 1536 and run.server["peak_rss_mb"] < 1536
