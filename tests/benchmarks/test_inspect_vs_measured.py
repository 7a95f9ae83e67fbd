"""benchmarks/inspect_vs_measured.py on the demo model: a real two-party run, in
table3's JSON shape, agrees with inspect per op kind; a run that differs by more
than 10% anywhere fails with the kind named."""

from __future__ import annotations

import copy
import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest
from testkit.demo_run import measured_demo_run

from secfepas_sdk.models.bundled import demo_model_path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "inspect_vs_measured.py"


def _script() -> Any:
    spec = importlib.util.spec_from_file_location("inspect_vs_measured", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def table3() -> dict[str, Any]:
    """One measured inference of the demo model (with its setup), as table3 writes it."""
    private, by_kind = measured_demo_run(0)
    m = private.manifest
    result = {"model": "demo", "ring_bits": m.ring_bits, "frac_bits": m.frac_bits,
              "he_params": m.he_params, "by_kind": by_kind}  # fmt: skip
    return {"results": [result]}


def test_demo_estimate_within_ten_percent_per_kind(
    table3: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, rows = tmp_path / "t3.json", tmp_path / "rows.json"
    path.write_text(json.dumps(table3))
    code = _script().main([str(path), str(demo_model_path()), "--json", str(rows)])
    out = capsys.readouterr().out
    assert code == 0, out
    kinds = {row["kind"]: row for row in json.loads(rows.read_text())["rows"]}
    assert {"conv", "maxpool", "relu_truncate", "setup", "output", "total"} <= set(kinds)
    assert kinds["maxpool"]["rounds_diff_pct"] == 0.0
    assert "| maxpool |" in out and "ok: every op kind within 10%" in out


def test_a_kind_off_by_more_than_ten_percent_fails(
    table3: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = copy.deepcopy(table3)
    row = bad["results"][0]["by_kind"]["maxpool"]
    row["bytes_down"] = round(row["bytes_down"] * 1.12)
    bad["results"][0]["by_kind"]["mystery"] = {"bytes_up": 1, "bytes_down": 0, "rounds": 0}
    path = tmp_path / "t3.json"
    path.write_text(json.dumps(bad))
    assert _script().main([str(path), str(demo_model_path())]) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and "maxpool bytes_down" in out and "mystery bytes_up" in out
