"""Model packages: import, verification, tampering and version mismatches."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from secfepas_sdk.cli.main import main
from secfepas_sdk.errors import ModelPackageError
from secfepas_sdk.models.bundled import demo_model_path
from secfepas_sdk.models.importer import import_onnx
from secfepas_sdk.models.package import (
    ARCHITECTURE,
    MANIFEST,
    PLAN,
    WEIGHTS,
    ensure_same_model,
    load_manifest,
    load_private,
    load_public,
    load_weights_npz,
    reference_onnx,
)


@pytest.fixture
def package(tmp_path: Path) -> Path:
    dst = tmp_path / "pkg"
    shutil.copytree(demo_model_path(), dst)
    return dst


def test_bundled_demo_loads() -> None:
    private = load_private(demo_model_path())
    public = load_public(demo_model_path())
    assert public.plan == private.plan
    assert public.manifest.class_names == ("none", "little", "moderate", "extreme")
    assert "NOT clinically trained" in public.manifest.description
    assert private.weights.nbytes > 0


def test_public_part_has_no_weights() -> None:
    import onnx

    arch = onnx.load(str(demo_model_path() / ARCHITECTURE))
    assert len(arch.graph.initializer) == 0
    assert (demo_model_path() / ARCHITECTURE).stat().st_size < 8192


def test_public_load_needs_no_private_dir(package: Path) -> None:
    shutil.rmtree(package / "private")
    assert load_public(package).plan.input_shape == (1, 3, 64, 64)
    with pytest.raises(ModelPackageError):
        load_private(package)


@pytest.mark.parametrize("name", [ARCHITECTURE, PLAN, WEIGHTS])
def test_tampered_file_is_refused(package: Path, name: str) -> None:
    data = bytearray((package / name).read_bytes())
    data[len(data) // 2] ^= 1
    (package / name).write_bytes(bytes(data))
    with pytest.raises(ModelPackageError, match="sha256 mismatch"):
        load_private(package)


def test_tampered_manifest_is_refused(package: Path) -> None:
    manifest = json.loads((package / MANIFEST).read_text())
    manifest["frac_bits"] = 13
    (package / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(ModelPackageError, match="does not match"):
        load_public(package)
    manifest["unexpected"] = 1
    (package / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(ModelPackageError, match="invalid"):
        load_public(package)


def test_version_mismatch_is_refused(package: Path) -> None:
    camera = load_manifest(package)
    ensure_same_model(camera, load_manifest(demo_model_path()))
    other = camera.model_copy(update={"version": "9.9.9"})
    with pytest.raises(ModelPackageError, match="model mismatch"):
        ensure_same_model(camera, other)


def test_pickled_weights_are_refused() -> None:
    buf = io.BytesIO()
    np.savez(buf, w=np.array([{"a": 1}], dtype=object))
    with pytest.raises(ModelPackageError):
        load_weights_npz(buf.getvalue())
    buf = io.BytesIO()
    np.savez(buf, w=np.zeros(3, dtype=np.float32))
    with pytest.raises(ModelPackageError, match="int64"):
        load_weights_npz(buf.getvalue())


def test_import_and_cli_verify(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ref = reference_onnx(demo_model_path())
    assert ref is not None
    out = tmp_path / "imported"
    assert main(["model", "import", str(ref), str(out), "--bits", "38", "--frac", "13"]) == 0
    capsys.readouterr()
    assert main(["model", "verify", str(out)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] and report["ring_bits"] == 38 and report["frac_bits"] == 13
    (out / WEIGHTS).write_bytes(b"garbage")
    assert main(["model", "verify", str(out)]) == 1
    assert main(["model", "verify", "--public-only", str(out)]) == 0


def test_cli_import_options_reach_the_plan(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ref = reference_onnx(demo_model_path())
    assert ref is not None
    default, custom = tmp_path / "default", tmp_path / "custom"
    assert main(["model", "import", str(ref), str(default)]) == 0
    assert main(["model", "import", str(ref), str(custom), "--ot-k", "4", "--no-pixel-bound"]) == 0
    capsys.readouterr()
    plan_default, plan_custom = load_public(default).plan, load_public(custom).plan
    assert plan_default.input_bound is not None and plan_custom.input_bound is None
    ks_default = {getattr(op, "ot_k", None) for op in plan_default.ops} - {None}
    ks_custom = {getattr(op, "ot_k", None) for op in plan_custom.ops} - {None}
    assert ks_default == {6} and ks_custom == {4}


def test_import_refuses_unreadable(tmp_path: Path) -> None:
    with pytest.raises(ModelPackageError):
        import_onnx(tmp_path / "missing.onnx", tmp_path / "o", model_id="x", class_names=["a"])


def test_format_1_manifest_loads_with_the_rgb_contract(package: Path) -> None:
    manifest = json.loads((package / MANIFEST).read_text())
    contract = manifest.pop("preprocess")
    manifest.update(format_version=1, mean=contract["mean"], std=contract["std"])
    (package / MANIFEST).write_text(json.dumps(manifest))
    loaded = load_private(package).manifest
    assert loaded.preprocess.model_dump(mode="json") == contract
    assert loaded.mean == (0.485, 0.456, 0.406)
    manifest["mean"] = [0.5, 0.5]
    (package / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(ModelPackageError, match="mean and std need 3"):
        load_public(package)


def test_contract_must_fit_the_input_shape(package: Path) -> None:
    manifest = json.loads((package / MANIFEST).read_text())
    manifest["preprocess"]["height"] = 96
    (package / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(ModelPackageError, match="contract's input"):
        load_public(package)


def _as_before_budgets(package: Path) -> None:
    """Rewrite the copied package as it was before circuit-privacy budgets: a plan
    without one (bfv-n8192-q180) and a format-2 manifest without the field."""
    import dataclasses

    from secfepas_sdk.models.package import sha256

    plan = dataclasses.replace(
        load_public(package).plan, he_params="bfv-n8192-q180", circuit_privacy=None
    )
    raw = plan.to_json().encode("utf-8")
    (package / PLAN).write_bytes(raw)
    manifest = json.loads((package / MANIFEST).read_text())
    del manifest["circuit_privacy"]
    manifest.update(format_version=2, he_params="bfv-n8192-q180")
    manifest["hashes"][PLAN] = sha256(raw)
    (package / MANIFEST).write_text(json.dumps(manifest))


def test_a_manifest_without_a_budget_loads_with_the_default(package: Path) -> None:
    _as_before_budgets(package)
    private = load_private(package)
    # version 2, not 1: without its budget the plan still carries max-pool drop_bits
    assert private.plan.circuit_privacy is None and private.plan.version == 2
    budget = private.manifest.circuit_privacy
    assert (budget.distance_log2, budget.inferences) == (-40, 10**8)


def test_the_manifest_states_the_plan_budget(package: Path) -> None:
    public = load_public(package)
    assert public.plan.circuit_privacy == public.manifest.circuit_privacy.engine
    manifest = json.loads((package / MANIFEST).read_text())
    manifest["circuit_privacy"]["inferences"] = 10**9
    (package / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(ModelPackageError, match="sized for the circuit-privacy budget"):
        load_public(package)
    manifest["circuit_privacy"]["extra"] = 1
    (package / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(ModelPackageError, match="extra"):
        load_public(package)


def test_cli_import_takes_a_budget(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ref = reference_onnx(demo_model_path())
    assert ref is not None
    out = tmp_path / "lax"
    args = ["model", "import", str(ref), str(out), "--privacy-distance-log2", "-20"]
    assert main([*args, "--privacy-inferences", "1000"]) == 0
    public = load_public(out)
    assert public.manifest.he_params == "bfv-n8192-q180"  # the cheaper set meets it
    assert public.plan.circuit_privacy is not None
    assert public.plan.circuit_privacy.to_dict() == {"distance_log2": -20, "inferences": 1000}
    capsys.readouterr()
    assert main([*args[:3], str(tmp_path / "x"), "--privacy-distance-log2", "-128"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("secfepas: error: ") and "out of reach" in err and err.count("\n") == 1
    assert main([*args[:3], str(tmp_path / "y"), "--privacy-inferences", "0"]) == 1
    assert "inferences must be in" in capsys.readouterr().err
