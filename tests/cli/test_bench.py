"""`secfepas bench` runs real secure inferences of the bundled demo model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from secfepas_sdk.cli.main import main


def test_bench_reports_time_bytes_and_memory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "bench.json"
    assert main(["bench", "--repeat", "1", "--json-out", str(out)]) == 0
    result = json.loads(out.read_text())
    (run,) = result["runs"]
    assert result["model_id"] == "demo-pain-cnn"
    assert 0 < run["infer_seconds"] < run["seconds"]
    assert run["mb_client_to_server"] > 0.1 and run["mb_server_to_client"] > 0.1
    assert run["rounds"] >= 3
    assert run["client_rss_mb"] > 10 and run["server_rss_mb"] > 10
    assert run["client_cpu_seconds"] > 0 and run["server_cpu_seconds"] > 0
    assert result["ot_extension"] == "ferret"  # the library default
    assert "median:" in capsys.readouterr().out


def test_bench_json_is_a_flag_that_prints_one_json_object(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """(On SoftSpokenOT: --ot reaches both parties; they would fail at the OT setup otherwise.)"""
    assert (
        main(["bench", "--repeat", "1", "--json", "--he-workers", "2", "--ot", "softspoken"]) == 0
    )
    result = json.loads(capsys.readouterr().out)  # nothing but the JSON object
    assert result["model_id"] == "demo-pain-cnn" and len(result["runs"]) == 1
    assert result["he_workers"] == 2 and result["ot_extension"] == "softspoken"
    (run,) = result["runs"]
    assert run["server_cpu_seconds"] > 0 and run["client_cpu_seconds"] > 0


def test_bench_rejects_zero_repeats(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--repeat", "0"]) == 1
    assert "--repeat" in capsys.readouterr().err
    assert main(["bench", "--he-workers", "-1"]) == 1
    assert "--he-workers" in capsys.readouterr().err
