"""`secfepas model import` through the real CLI: the preprocessing contract (defaults
from the ONNX input, options, bad values) and bad input files, each one clear error
naming the file, with no half-written package left behind."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import onnx
import pytest
from testkit.cli import tiny_cnn

from secfepas_sdk.cli.main import main
from secfepas_sdk.models.package import FORMAT_VERSION, MANIFEST, load_private, load_public
from secfepas_sdk.snni.ops import LinearOp
from secfepas_sdk.snni.plan import he_layer


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def _contract(pkg: Path) -> dict[str, object]:
    manifest = json.loads((pkg / MANIFEST).read_text())
    assert manifest["format_version"] == FORMAT_VERSION and "mean" not in manifest
    return dict(manifest["preprocess"])


def test_contract_defaults_come_from_the_onnx_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    grey = tiny_cnn(tmp_path / "grey.onnx", channels=1, size=(64, 64))
    code, out, _ = run_cli(["model", "import", str(grey), str(tmp_path / "g")], capsys)
    assert code == 0 and json.loads(out)["fingerprint"].startswith("grey@1.0.0#")
    assert _contract(tmp_path / "g") == {
        "channels": 1, "colour_order": "GRAY", "height": 64, "width": 64, "mean": [0.0],
        "std": [1.0], "crop_margin": 0.2, "crop_square": True, "interpolation": "area",
    }  # fmt: skip
    rgb = tiny_cnn(tmp_path / "rgb.onnx", channels=3, size=(224, 224))
    assert run_cli(["model", "import", str(rgb), str(tmp_path / "c")], capsys)[0] == 0
    contract = _contract(tmp_path / "c")
    assert contract["colour_order"] == "RGB" and contract["mean"] == [0.485, 0.456, 0.406]
    assert (contract["height"], contract["width"]) == (224, 224)
    assert load_public(tmp_path / "c").plan.input_shape == (1, 3, 224, 224)


def test_contract_options_reach_the_manifest_and_verify(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tiny_cnn(tmp_path / "m.onnx", size=(48, 32))
    args = ["model", "import", str(src), str(tmp_path / "p"), "--colour-order", "bgr"]
    args += ["--mean", "0.5", "0.4", "0.3", "--std", "0.2", "0.25", "0.3", "--size", "48x32"]
    args += ["--crop-margin", "0.1", "--no-square-crop", "--interpolation", "cubic"]
    assert run_cli(args, capsys)[0] == 0
    assert _contract(tmp_path / "p") == {
        "channels": 3, "colour_order": "BGR", "height": 48, "width": 32, "mean": [0.5, 0.4, 0.3],
        "std": [0.2, 0.25, 0.3], "crop_margin": 0.1, "crop_square": False,
        "interpolation": "cubic",
    }  # fmt: skip
    code, out, _ = run_cli(["model", "verify", str(tmp_path / "p")], capsys)
    assert code == 0 and json.loads(out)["preprocess"]["colour_order"] == "BGR"
    # The public input range follows the contract's mean and std.
    assert load_public(tmp_path / "p").plan.input_bound == pytest.approx(0.5 / 0.2, abs=2e-3)


def test_link_mbps_picks_tilings_with_fewer_uploads(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--link-mbps: the plan pins tilings priced for a slow camera link (fewer input
    ciphertexts per inference); without it, those that minimise the edge's time."""
    src = tiny_cnn(tmp_path / "m.onnx", size=(64, 64))
    assert run_cli(["model", "import", str(src), str(tmp_path / "edge")], capsys)[0] == 0
    args = ["model", "import", str(src), str(tmp_path / "slow"), "--link-mbps", "20"]
    assert run_cli(args, capsys)[0] == 0

    def uploads(pkg: Path) -> int:
        plan = load_public(pkg).plan
        n = 8192  # the parameter sets' N
        linear = [op for op in plan.ops if isinstance(op, LinearOp)]
        return sum(he_layer(op, plan.shapes[op.inputs[0]], n).layout.n_in for op in linear)

    assert uploads(tmp_path / "slow") < uploads(tmp_path / "edge")


def test_dynamic_size_is_fixed_by_the_size_option(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tiny_cnn(tmp_path / "dyn.onnx", size=("h", "w"))
    code, _, err = run_cli(["model", "import", str(src), str(tmp_path / "p")], capsys)
    assert code == 1 and "dynamic; give --size" in err and str(src) in err
    assert (
        run_cli(["model", "import", str(src), str(tmp_path / "p"), "--size", "40"], capsys)[0] == 0
    )
    private = load_private(tmp_path / "p")
    assert private.plan.input_shape == (1, 3, 40, 40)
    ref = onnx.load(str(tmp_path / "p" / "private" / "reference.onnx"))
    assert [d.dim_value for d in ref.graph.input[0].type.tensor_type.shape.dim] == [1, 3, 40, 40]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--mean", "0.5", "0.5"], "mean and std need 3 value"),
        (["--std", "0.2", "0.2", "0.2", "0.2"], "mean and std need 3 value"),
        (["--size", "64x64"], "--size 64x64 does not match the ONNX input 32x32"),
        (["--size", "big"], "expected HEIGHTxWIDTH"),
        (["--colour-order", "YUV"], "unknown colour order 'YUV'"),
        (["--colour-order", "GRAY"], "colour order GRAY does not fit 3 channel"),
        (["--interpolation", "lanczos"], "unknown interpolation 'lanczos'"),
        (["--std", "0", "1", "1"], "std must be finite and > 0"),
        (["--crop-margin", "5"], "crop_margin"),
        (["--classes", "a", "b", "c"], "the model has 4 outputs but 3 class names"),
        (["--link-mbps", "0"], "the link rate must be 0.1 .. 1e6 Mbit/s"),
    ],
)
def test_bad_contract_values_get_one_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], options: list[str], message: str
) -> None:
    src = tiny_cnn(tmp_path / "m.onnx")
    out_dir = tmp_path / "pkg"
    code, out, err = run_cli(["model", "import", str(src), str(out_dir), *options], capsys)
    assert code == 1 and out == ""
    assert err.startswith("secfepas: error: ") and err.count("\n") == 1, err
    assert message in err
    if "--size" not in err:
        assert str(src) in err
    assert not out_dir.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]


def _bad_inputs(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    text = tmp_path / "notes.onnx"
    text.write_text("this is not a model\n" * 20)
    rank3 = tiny_cnn(tmp_path / "rank3.onnx", rank=3)
    ops = tiny_cnn(tmp_path / "ops.onnx", extra_nodes=("Sigmoid", "Tanh", "Sin"))
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    return {
        "text": (text, "is not an ONNX model"),
        "empty": (empty, "is not an ONNX model"),
        "rank": (rank3, "has rank 3; need 4 (NCHW"),
        "ops": (ops, "bad_sigmoid (Sigmoid), bad_tanh (Tanh), bad_sin (Sin)"),
    }


@pytest.mark.parametrize("case", ["text", "empty", "rank", "ops"])
def test_bad_input_files_get_one_clear_error_naming_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str
) -> None:
    src, message = _bad_inputs(tmp_path)[case]
    out_dir = tmp_path / "out" / "pkg"
    code, _, err = run_cli(["model", "import", str(src), str(out_dir)], capsys)
    assert code == 1 and err.startswith("secfepas: error: ") and err.count("\n") == 1, err
    assert str(src) in err and message in err
    assert not out_dir.exists()


def test_failed_reimport_leaves_the_old_package_whole(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = tiny_cnn(tmp_path / "m.onnx")
    pkg = tmp_path / "pkg"
    assert run_cli(["model", "import", str(good), str(pkg)], capsys)[0] == 0
    before = {p.relative_to(pkg): p.read_bytes() for p in pkg.rglob("*") if p.is_file()}
    code, _, err = run_cli(["model", "import", str(good), str(pkg), "--classes", "x"], capsys)
    assert code == 1 and "class names" in err
    after = {p.relative_to(pkg): p.read_bytes() for p in pkg.rglob("*") if p.is_file()}
    assert after == before
    # A successful re-import replaces it whole; no temporary folder stays behind.
    args = ["model", "import", str(good), str(pkg), "--version", "2.0.0"]
    assert run_cli(args, capsys)[0] == 0
    assert load_private(pkg).manifest.version == "2.0.0"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx", "pkg"]
    # A folder that is not a package is never replaced.
    other = tmp_path / "other"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    code, _, err = run_cli(["model", "import", str(good), str(other)], capsys)
    assert code == 1 and "not a model package" in err and (other / "keep.txt").exists()


def test_error_is_one_line_from_the_console_script(tmp_path: Path) -> None:
    src = tmp_path / "junk.onnx"
    src.write_bytes(b"\x08\x96\x01garbage")
    proc = subprocess.run(
        [sys.executable, "-m", "secfepas_sdk.cli.main", "model", "import", str(src), "out"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.startswith(f"secfepas: error: {src} is not an ONNX model")
    assert proc.stderr.count("\n") == 1 and not (tmp_path / "out").exists()
