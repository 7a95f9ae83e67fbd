"""`secfepas snni selftest`: two real processes over loopback TCP, JSON contract."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import pytest
from skimage import data
from testkit.cli import tiny_cnn

from secfepas_sdk.cli.main import main
from secfepas_sdk.models.bundled import demo_model_path
from secfepas_sdk.models.package import reference_onnx


@pytest.fixture(scope="module")
def astronaut(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("img") / "astronaut.png"
    cv2.imwrite(str(path), cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR))
    return path


def _check_report(report: dict) -> None:
    assert set(report) == {
        "secure_logits", "plain_logits", "argmax_match", "max_abs_err", "seconds", "bytes",
        "rounds", "peak_rss_mb", "ot_extension",
    }  # fmt: skip
    assert report["ot_extension"] == "ferret"  # the library default
    assert report["argmax_match"] is True
    assert report["max_abs_err"] < 0.05
    assert len(report["secure_logits"]) == len(report["plain_logits"]) == 4
    assert set(report["seconds"]) == {"total", "client_compute", "server_compute"}
    assert report["bytes"]["client_to_server"] > 0 and report["bytes"]["server_to_client"] > 0
    assert report["rounds"] > 0
    assert report["peak_rss_mb"]["client"] > 0 and report["peak_rss_mb"]["server"] > 0


def test_selftest_on_bundled_package(astronaut: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """With the edge's HE layers split across two block processes (--he-workers 2)."""
    code = main(
        [
            "snni", "selftest", "--model", str(demo_model_path()), "--input", str(astronaut),
            "--json", "--he-workers", "2",
        ]
    )  # fmt: skip
    report = json.loads(capsys.readouterr().out)
    assert code == 0
    _check_report(report)


def test_selftest_refuses_an_unknown_ot_extension(
    astronaut: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["snni", "selftest", "--model", "m", "--input", str(astronaut), "--ot", "nope"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "--ot" in err and "nope" in err and "ferret" in err


def test_selftest_on_onnx_file_prints_text_without_json(
    astronaut: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ref = reference_onnx(demo_model_path())
    assert ref is not None
    code = main(["snni", "selftest", "--model", str(ref), "--input", str(astronaut)])
    out = capsys.readouterr().out
    assert code == 0
    assert out.startswith("secure inference: argmax matches plaintext onnxruntime")
    assert "MB up" in out and "rounds" in out
    with pytest.raises(json.JSONDecodeError):
        json.loads(out)


def test_selftest_missing_image(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code = main(
        [
            "snni",
            "selftest",
            "--model",
            str(demo_model_path()),
            "--input",
            str(tmp_path / "none.png"),
        ]
    )
    assert code == 1
    assert "cannot read the image" in capsys.readouterr().err


def test_selftest_builds_a_grey_models_input_from_its_contract(
    astronaut: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tiny_cnn(tmp_path / "grey.onnx", channels=1, size=(64, 64))
    assert main(["model", "import", str(src), str(tmp_path / "pkg")]) == 0
    capsys.readouterr()
    code = main(
        ["snni", "selftest", "--model", str(tmp_path / "pkg"), "--input", str(astronaut), "--json"]
    )
    report = json.loads(capsys.readouterr().out)
    assert code == 0 and report["argmax_match"] is True and report["max_abs_err"] < 0.05
