"""benchmarks/he_workers.py on a tiny conv: it times 1 and 2 block processes, checks
that the replies are byte-identical and the conv exact, and counts every process's CPU."""

from __future__ import annotations

import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCH))
import he_workers  # noqa: E402 - a benchmark script, not a package


def test_one_and_two_block_processes_on_a_tiny_conv(tmp_path: Path) -> None:
    out = tmp_path / "he.json"
    result = he_workers.main(
        ["--layers", "3x3-96-96-8", "--workers", "1", "2", "--repeat", "1", "--json", str(out)]
    )
    assert out.exists()
    one, two = result["rows"]
    assert (one["he_workers"], two["he_workers"]) == (1, 2)
    assert one["n_out"] > 1 and one["kernels_cached"] is False
    assert one["busiest_median_s"] == one["cpu_median_s"] > 0  # one process does it all
    assert 0 < two["busiest_median_s"] < two["cpu_median_s"]  # the work is split
    assert len(two["block_peak_rss_mb"]) == 2 and one["block_peak_rss_mb"] == []
    assert result["machine"]["cores"] >= 1 and result["params"] == "bfv-n8192-q200"
    assert one["trimmed_replies"] is True
