"""benchmarks/soak.py: its growth verdict, and a few seconds of a real run (JSON and PNG)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "soak.py"


def _module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("soak", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _samples(edge: list[float], camera: list[float]) -> list[dict[str, object]]:
    return [
        {"t": float(t), "edge_rss_mb": e, "edge_pss_mb": e / 2, "cameras_rss_mb": {"camera-1": c}}
        for t, (e, c) in enumerate(zip(edge, camera, strict=True))
    ]


def test_a_flat_curve_passes_and_a_leak_fails() -> None:
    soak = _module()
    warm = [50.0, 80.0, 95.0]  # start-up, before the warm-up ends at t = 3
    flat = [100.0, 101.0, 99.0, 100.0] * 10  # noise around a level
    leak = [100.0 + i for i in range(40)]  # +1 MB per sample
    report = soak.verdicts(_samples(warm + flat, warm + leak), ["camera-1"], 3.0, 10.0)
    assert report["edge"]["ok"] and abs(report["edge"]["growth_pct"]) < 1.5
    assert report["edge"]["baseline_mb"] == 100.0 and report["edge"]["peak_mb"] == 101.0
    assert report["edge"]["pss"]["baseline_mb"] == 50.0
    camera = report["camera-1"]
    assert not camera["ok"] and camera["growth_pct"] > 10  # 101.5 -> 137.5 MB
    assert camera["peak_mb"] == 139.0


def test_one_spike_does_not_decide() -> None:
    curve = [100.0] * 30
    curve[-1] = 200.0  # one inference's buffers in flight at the last sample
    assert _module().growth(curve)["growth_pct"] == 0.0


def test_no_sample_after_the_warm_up_is_an_error() -> None:
    with pytest.raises(ValueError, match="warm-up"):
        _module().growth([])


def test_a_short_run_writes_the_report_and_the_curve(tmp_path: Path) -> None:
    out, png = tmp_path / "soak.json", tmp_path / "soak.png"
    run = subprocess.run(
        [sys.executable, str(SCRIPT), "--duration", "6", "--warmup", "2", "--interval", "1",
         "--cameras", "1", "--rate", "30", "--frames", "flat", "--limit", "1000",
         "--json", str(out), "--png", str(png)],
        capture_output=True,
        text=True,
        timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    report = json.loads(out.read_text())
    assert set(report) == {
        "meta", "cameras", "inferences", "achieved_per_min", "processes", "ok", "samples"
    }  # fmt: skip
    assert report["meta"]["cameras"] == 1 and report["meta"]["rate_per_min"] == 30
    assert report["cameras"] == ["camera-1"] and report["ok"] is True
    assert set(report["inferences"]) == {"camera-1"}
    assert 5 <= len(report["samples"]) <= 8  # one a second for 6 s
    for sample in report["samples"]:
        assert 0 < sample["edge_pss_mb"] <= sample["edge_rss_mb"]
        assert sample["cameras_rss_mb"]["camera-1"] > 50  # a Python process with numpy
    assert set(report["processes"]) == {"edge", "camera-1"}
    for row in report["processes"].values():
        assert {"baseline_mb", "final_mb", "peak_mb", "growth_pct", "ok"} <= set(row)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "camera-1" in run.stdout and "growth" in run.stdout
