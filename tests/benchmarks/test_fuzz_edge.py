"""The fuzz benchmark at 10,000 cases: no crash, no hang, bounded edge memory."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "fuzz_edge.py"


@pytest.mark.slow
def test_ten_thousand_mutated_frames(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("fuzz_edge", SCRIPT)
    assert spec is not None and spec.loader is not None
    fuzz = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fuzz)
    out = tmp_path / "fuzz.json"
    code = fuzz.main(["-n", "10000", "--concurrency", "32", "--seed", "13", "--json", str(out)])
    report = json.loads(out.read_text())
    assert report["cases"] == 10_000 and report["crashes"] == 0 and report["hangs"] == 0
    assert report["refused"] <= 100, report  # the edge kept accepting connections
    assert report["peak_rss_bytes"] < report["idle_rss_bytes"] + (1 << 30)
    assert code == 0
