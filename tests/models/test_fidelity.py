"""`secfepas model quantize --fp16` and `model fidelity` through the real CLI, on the
demo package and real offline photos (scikit-image)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import onnx
import pytest
from onnx import numpy_helper
from skimage import data

from secfepas_sdk.cli.main import main
from secfepas_sdk.models.bundled import demo_model_path
from secfepas_sdk.models.importer import import_onnx
from secfepas_sdk.models.package import REFERENCE, load_private

PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "camera")


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("images")
    for name in PHOTOS:
        img = getattr(data, name)()
        bgr = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR if img.ndim == 2 else cv2.COLOR_RGB2BGR)
        cv2.imwrite(str(root / f"{name}.png"), bgr)
    (root / "notes.txt").write_text("not an image")
    return root


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    assert main(["model", *args, "--json"]) == 0
    out: dict[str, Any] = json.loads(capsys.readouterr().out)
    return out


def test_fp16_rounds_every_weight_and_changes_no_secure_cost(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = demo_model_path() / REFERENCE
    out = tmp_path / "m16.onnx"
    assert main(["model", "quantize", str(src), "--fp16", "--out", str(out)]) == 0
    assert json.loads(capsys.readouterr().out) == {"out": str(out), "fp16_tensors": 8}
    for init in onnx.load(str(out)).graph.initializer:
        arr = numpy_helper.to_array(init)
        assert np.array_equal(arr, arr.astype(np.float16).astype(np.float32))
    # The importer rounds to FP16 before fixed point: the same plan and weights, so
    # the same bytes on the wire.
    import_onnx(src, tmp_path / "p32", model_id="m", class_names="abcd")
    import_onnx(out, tmp_path / "p16", model_id="m", class_names="abcd")
    a, b = load_private(tmp_path / "p32"), load_private(tmp_path / "p16")
    assert a.plan == b.plan and a.manifest.fingerprint == b.manifest.fingerprint
    assert all(np.array_equal(a.weights.arrays[k], b.weights.arrays[k]) for k in a.weights.arrays)


def test_fidelity_compares_fp32_fp16_fixed_point_and_secure(
    images: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    labels = tmp_path / "labels.csv"
    labels.write_text("file,label\nastronaut.png,none\nchelsea.png,2\n")
    report = _run(
        capsys, "fidelity", str(demo_model_path()), "--images", str(images),
        "--labels", str(labels), "--secure", "1",
    )  # fmt: skip
    assert report["images"] == len(PHOTOS) and report["labelled"] == 2
    rows = {r["variant"]: r for r in report["variants"]}
    assert set(rows) == {"fp32", "fp16", "fixed_point", "secure"}
    assert rows["fp32"]["top1_agreement_with_fp32"] == 1.0 and rows["fp32"]["max_logit_error"] == 0
    for name in ("fp16", "fixed_point"):
        assert rows[name]["images"] == len(PHOTOS)
        assert 0 < rows[name]["max_logit_error"] < 0.05
        assert rows[name]["mean_logit_error"] <= rows[name]["max_logit_error"]
    assert rows["secure"]["images"] == 1 and rows["secure"]["max_logit_error"] < 0.05
    assert all(0.0 <= r["accuracy"] <= 1.0 for r in rows.values())
    assert report["secure_traffic"]["bytes_up"] > 1_000_000


def test_fidelity_bad_inputs_are_one_line_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["model", "fidelity", str(demo_model_path()), "--images", str(empty)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("secfepas: error: --images") and "no image files" in err
