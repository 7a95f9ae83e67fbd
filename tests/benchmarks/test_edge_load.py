"""benchmarks/edge_load.py: the cost per frame it reports, and one real run's JSON."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "edge_load.py"


def _module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("edge_load", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_frame_costs_split_setup_from_steady_inferences() -> None:
    # 4 sessions: 10 CPU-s for 4 setups + 4 first inferences, then 8 CPU-s for 16 more.
    cpu = {"idle": 2.0, "steady": 12.0, "done": 20.0}
    cost = _module().frame_costs(cpu, 4, 16, [1.0] * 4)
    assert cost == {
        "edge_cpu_s_per_inference": 0.5,
        "edge_setup_cpu_s_per_session": 2.0,  # 10 / 4 - 0.5
        "camera_cpu_s_per_inference": 0.25,
        "cameras_per_core_at_5s": 10.0,  # 5 s / 0.5 CPU-s
    }


def test_frame_costs_are_none_when_a_barrier_broke() -> None:
    cost = _module().frame_costs({"idle": 1.0}, 2, 6, [0.5, 0.5])
    assert set(cost.values()) == {None}


def test_camera_counts_are_checked() -> None:
    levels = _module()._levels
    assert levels("1,2,4,8,16") == [1, 2, 4, 8, 16]
    for bad in ("0,2", "two", ""):
        with pytest.raises(Exception, match="camera counts"):
            levels(bad)


@pytest.mark.slow
def test_one_camera_run_reports_every_figure(tmp_path: Path) -> None:
    out = tmp_path / "load.json"
    run = subprocess.run(
        [sys.executable, str(SCRIPT), "--cameras", "1", "--count", "2", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr
    (row,) = json.loads(out.read_text())["rows"]
    assert row["cameras"] == 1 and row["inferences"] == 2 and row["errors"] == 0
    for key in ("throughput_per_min", "p50_s", "p99_s", "server_peak_rss_mb"):
        assert row[key] > 0, key
    assert 0 < row["server_peak_pss_mb"] <= row["server_peak_rss_mb"]
    # One steady inference of the demo model costs the edge well under a minute of CPU.
    assert 0 < row["edge_cpu_s_per_inference"] < 60
    assert row["edge_setup_cpu_s_per_session"] >= 0
    assert row["cameras_per_core_at_5s"] == pytest.approx(
        5 / row["edge_cpu_s_per_inference"], rel=0.05
    )
    assert "| edge CPU-s/inference |" in run.stdout
