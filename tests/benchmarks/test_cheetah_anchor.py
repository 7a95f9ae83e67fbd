"""benchmarks/cheetah_anchor.py's runner handling: a run that never ends is killed with
every process it started, and the figures are read from the logs a run leaves."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from testkit.proctree import alive
from testkit.wait import wait_until

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCH))
import cheetah_anchor  # noqa: E402 - a benchmark script, not a package


def test_a_runner_that_hangs_is_killed_with_its_children(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As when one OpenCheetah party waits for ever on a peer that crashed at exit."""
    pidfile = tmp_path / "child.pid"
    (tmp_path / "run.sh").write_text(f"sleep 600 &\necho $! > {pidfile}\nwait\n")
    monkeypatch.setenv("OC_ROOT", str(tmp_path / "oc"))
    with pytest.raises(RuntimeError, match="did not finish in 1 s"):
        cheetah_anchor.run("sqnet", anchor_dir=tmp_path, timeout_s=1.0)
    child = int(pidfile.read_text())
    wait_until(lambda: not alive(child), 10, what="the runner's child to end")


def test_a_failing_runner_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "run.sh").write_text("exit 3\n")
    monkeypatch.setenv("OC_ROOT", str(tmp_path / "oc"))
    with pytest.raises(RuntimeError, match="exit 3"):
        cheetah_anchor.run("sqnet", anchor_dir=tmp_path, timeout_s=30.0)


def test_figures_are_read_from_a_runs_logs(tmp_path: Path) -> None:
    server = (
        "Total time taken = 53326 milliseconds.\nTotal data sent = 343.754 MiB.\n"
        "Number of rounds = 822\nTotal comm (sent+received) = 426.066 MiB.\n"
    )
    client = "Total data sent = 82.3121 MiB.\nNumber of rounds = 822\n"
    timing = (
        "\tUser time (seconds): 44.12\n\tSystem time (seconds): 5.75\n"
        "\tMaximum resident set size (kbytes): 1380824\n"
    )
    (tmp_path / "server.log").write_text(server)
    (tmp_path / "client.log").write_text(client)
    for who in ("server", "client"):
        (tmp_path / f"{who}.time").write_text(timing)
    got = cheetah_anchor.parse_results(tmp_path, "sqnet", 1)
    assert got.seconds == 53.326 and got.rounds == 822
    assert got.bytes_total == round(426.066 * 2**20)
    assert got.bytes_client_sent == round(82.3121 * 2**20)
    assert got.cpu_seconds_server == pytest.approx(49.87)
    assert got.peak_rss_mb_server == pytest.approx(1380824 / 1024)
