"""The preprocessing contract travels with the model: a grey 64x64 model and a BGR
224x224 model (own mean/std, no square crop) are imported through the CLI, served
by a real edge, and the real camera pipeline (MTCNN on a real photo) builds each
one's tensor from the manifest the edge sends. The secure result matches
onnxruntime on a tensor built here by hand from the stated contract, and not the
one the old constants (RGB, ImageNet mean/std) would give."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import onnxruntime as ort
import pytest
from numpy.typing import NDArray
from onnx import TensorProto, helper, numpy_helper
from testkit.camera import BackgroundEdge

from secfepas_sdk.camera.client import SecureInferenceClient
from secfepas_sdk.camera.detection import FaceDetector
from secfepas_sdk.camera.pipeline import CameraPipeline, PipelineConfig
from secfepas_sdk.camera.preprocess import square_box
from secfepas_sdk.camera.sources import open_source
from secfepas_sdk.certs import Pki
from secfepas_sdk.cli.main import main
from secfepas_sdk.edge.settings import load_settings
from secfepas_sdk.protocol.transport import TlsFiles


def sensitive_cnn(path: Path, channels: int, size: int, seed: int) -> Path:
    """Conv (stride 4) -> ReLU -> GAP -> Gemm with logits spread over a few units, so
    a wrong colour order or normalisation moves the probabilities visibly."""
    rng = np.random.default_rng(seed)
    w = rng.normal(0, 1.0, (8, channels, 4, 4)).astype(np.float32)
    b = rng.normal(0, 0.5, 8).astype(np.float32)
    fc = rng.normal(0, 2.0, (4, 8)).astype(np.float32)
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["c"], name="conv", strides=[4, 4]),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node("GlobalAveragePool", ["r"], ["g"], name="gap"),
        helper.make_node("Flatten", ["g"], ["f"], name="flat"),
        helper.make_node("Gemm", ["f", "fc"], ["logits"], name="fc", transB=1),
    ]
    graph = helper.make_graph(
        nodes,
        "sensitive",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, channels, size, size])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 4])],
        initializer=[numpy_helper.from_array(v, k) for k, v in (("w", w), ("b", b), ("fc", fc))],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    path.write_bytes(model.SerializeToString())
    return path


def by_hand(
    pixels: NDArray[np.uint8], box: Any, *, order: str, size: int, mean: Any, std: Any, square: bool
) -> NDArray[np.float32]:
    """The contract applied step by step with OpenCV (margin 0.2, area interpolation)."""
    if square:
        x1, y1, x2, y2 = square_box(box, pixels.shape[:2], 0.2)
    else:
        grow = 0.2 * max(box[2] - box[0], box[3] - box[1])
        x1, y1 = round(box[0] - grow), round(box[1] - grow)
        x2, y2 = round(box[2] + grow), round(box[3] + grow)
    crop = pixels[max(y1, 0) : y2, max(x1, 0) : x2]
    small = crop.shape[0] > size and crop.shape[1] > size
    interp = cv2.INTER_AREA if small else cv2.INTER_LINEAR
    img = cv2.resize(crop, (size, size), interpolation=interp)
    if order == "GRAY":
        img = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)[..., None]
    elif order == "RGB":
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    x = (img.astype(np.float32) / 255.0 - np.float32(mean)) / np.float32(std)
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None], dtype=np.float32)


def plain_probabilities(onnx_path: Path, x: NDArray[np.float32]) -> NDArray[np.float64]:
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    logits = np.asarray(sess.run(None, {"x": x})[0], np.float64).reshape(-1)
    e = np.exp(logits - logits.max())
    return np.asarray(e / e.sum())


MODELS = {
    "grey64": {"channels": 1, "size": 64, "options": [], "order": "GRAY", "mean": [0.0],
               "std": [1.0], "square": True},
    "bgr224": {"channels": 3, "size": 224,
               "options": ["--colour-order", "BGR", "--mean", "0.3", "0.5", "0.7", "--std",
                           "0.2", "0.3", "0.25", "--no-square-crop"],
               "order": "BGR", "mean": [0.3, 0.5, 0.7], "std": [0.2, 0.3, 0.25],
               "square": False},
}  # fmt: skip


@pytest.mark.integration
@pytest.mark.parametrize("name", list(MODELS))
def test_pipeline_builds_each_models_tensor_from_its_manifest(
    name: str,
    tmp_path: Path,
    pki: Pki,
    tls: TlsFiles,
    astronaut_bgr: NDArray[np.uint8],
    detector: FaceDetector,
) -> None:
    spec = MODELS[name]
    src = sensitive_cnn(tmp_path / f"{name}.onnx", spec["channels"], spec["size"], seed=11)
    models = tmp_path / "models"
    args = ["model", "import", str(src), str(models / name), "--model-id", name, *spec["options"]]
    assert main(args) == 0
    frames = tmp_path / "frames"
    frames.mkdir()
    cv2.imwrite(str(frames / "0000.png"), astronaut_bgr)
    settings = load_settings(
        None,
        model_dir=models,
        ca=pki.ca_cert,
        cert=pki.edge_cert,
        key=pki.edge_key,
        port=0,
        metrics_enabled=False,
    )

    async def run(address: tuple[str, int]) -> list[Any]:
        client = SecureInferenceClient(address, tls, name)
        pipeline = CameraPipeline(
            open_source(frames),
            client,
            detector=detector,
            config=PipelineConfig(max_frames=1),
        )
        try:
            return [a async for a in pipeline.run()]
        finally:
            await client.close()

    with BackgroundEdge(settings) as edge:
        (result,) = asyncio.run(run(edge.address))
    face = detector.best(astronaut_bgr)
    assert face is not None
    keys = ("order", "size", "mean", "std", "square")
    want = plain_probabilities(src, by_hand(astronaut_bgr, face.box, **{k: spec[k] for k in keys}))
    np.testing.assert_allclose(result.probabilities, want, atol=0.02)
    # The test can tell: the old fixed preprocessing (RGB, ImageNet mean/std, square)
    # gives other probabilities for the BGR model, and no tensor at all for the grey one.
    if spec["channels"] == 3:
        old = by_hand(
            astronaut_bgr, face.box, order="RGB", size=224, mean=[0.485, 0.456, 0.406],
            std=[0.229, 0.224, 0.225], square=True,
        )  # fmt: skip
        assert np.abs(plain_probabilities(src, old) - want).max() > 0.1
