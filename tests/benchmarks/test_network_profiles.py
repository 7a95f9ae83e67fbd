"""benchmarks/network_profiles.py on the demo model with a tiny profile set: the
table, the JSON and the PNG have their shape, the achieved RTT is the one set, and
no namespace is left, after a clean run, after SIGTERM mid-inference, and after a
SIGKILL followed by a re-run (which removes what the killed run left).

Needs root, iproute2 and /dev/net/tun; fails (never skips) without them.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from testkit.netns import require_netns
from testkit.proctree import alive
from testkit.wait import wait_until

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCH))
import linkemu  # noqa: E402 - benchmark scripts, not a package

SCRIPT = BENCH / "network_profiles.py"
TINY = ["--models", "demo", "--pings", "20", "--bulk-s", "0.5"]


def owned_by(pid: int) -> list[str]:
    return [n for n in linkemu.list_namespaces() if n.startswith(f"{linkemu.PREFIX}-{pid}-")]


def start(args: list[str]) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, str(SCRIPT), *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip


def until_mid_inference(proc: subprocess.Popen[str], profile: str) -> list[str]:
    """Read the benchmark's progress until its first inference on ``profile`` is done
    (so the second runs now: forwarder, edge, its session worker and camera are up)."""
    seen = []
    assert proc.stderr is not None
    for line in proc.stderr:
        seen.append(line)
        if f"demo on {profile}: inference 1/2" in line:
            return seen
    raise AssertionError(f"the benchmark ended before {profile}: {''.join(seen)[-2000:]}")


@pytest.mark.slow
def test_demo_on_loopback_and_a_tiny_link(tmp_path: Path) -> None:
    require_netns()
    out_json, out_png = tmp_path / "np.json", tmp_path / "np.png"
    args = [*TINY, "--profiles", "loopback", "tiny:200:8", "--count", "2"]
    proc = start([*args, "--json", str(out_json), "--png", str(out_png)])
    stdout, stderr = proc.communicate(timeout=900)
    assert proc.returncode == 0, stderr[-3000:]
    assert owned_by(proc.pid) == []
    results = json.loads(out_json.read_text())
    assert set(results) >= {"meta", "links", "rows", "models", "joint_fit"}
    tiny = results["links"]["tiny"]
    assert tiny["set"] == {"rate_mbit": 200.0, "rtt_ms": 8.0}
    assert 7.5 <= tiny["measure"]["rtt_ms_median"] <= 11.0, tiny
    assert tiny["measure"]["mbit_s_steady"] <= 212, tiny
    rows = {r["profile"]: r for r in results["rows"]}
    assert set(rows) == {"loopback", "tiny"} and all(r["model"] == "demo" for r in rows.values())
    for r in rows.values():
        assert r["rounds"] > 10 and r["bytes_up"] > 1e6 and r["bytes_down"] > 1e6
        assert r["seconds"] > 0 and r["first_seconds"] > 0 and not r["steady_is_first"]
        assert r["edge_cpu_s"] > 0 and r["camera_cpu_s"] > 0
        assert sum(k["rounds"] for k in r["by_kind"].values()) == r["rounds"]
        assert sum(v["rounds"] for v in r["by_label"].values()) == r["rounds"]
    # The protocol's traffic does not depend on the link; its time does.
    assert rows["loopback"]["rounds"] == rows["tiny"]["rounds"]
    assert (
        rows["tiny"]["forwarder_cpu_s_session"] > 0 == rows["loopback"]["forwarder_cpu_s_session"]
    )
    model = results["models"]["demo"]
    assert model["fit"] is None and len(model["apriori"]["predicted_s"]) == 2
    assert out_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for heading in (
        "Links (measured before the runs)",
        "| demo | tiny |",
        "Where the rounds come from",
        "The ops with the most rounds",
        "time ≈ compute + bytes/bandwidth + rounds × RTT",
    ):
        assert heading in stdout, stdout
    assert "tiny (set 200 Mbit/s, 8 ms): RTT" in stderr  # printed before the runs


@pytest.mark.slow
def test_no_namespace_outlives_sigterm_or_sigkill_and_a_rerun() -> None:
    require_netns()
    args = [*TINY, "--profiles", "tiny:200:8", "--count", "2"]
    term = start(args)
    until_mid_inference(term, "tiny")
    assert len(owned_by(term.pid)) == 2
    term.send_signal(signal.SIGTERM)
    _, stderr = term.communicate(timeout=120)
    assert term.returncode == 128 + signal.SIGTERM, stderr[-3000:]
    assert owned_by(term.pid) == []

    killed = start(args)
    until_mid_inference(killed, "tiny")
    left = owned_by(killed.pid)
    tree = descendants(killed.pid)  # forwarder, edge (and its workers), camera
    assert len(left) == 2 and len(tree) >= 3
    files = [p for d in linkemu.scratch_dirs() for p in d.glob(f"{linkemu.PREFIX}-{killed.pid}-*")]
    assert len(files) == 2, files  # the forwarder's control file and the run's directory
    killed.kill()
    killed.communicate(timeout=60)
    assert owned_by(killed.pid) == left  # SIGKILL leaves them: the next run must clean up
    wait_until(lambda: not any(map(alive, tree)), 60, what="the killed run's children to die")
    rerun = start([*TINY, "--profiles", "loopback", "--count", "1"])
    _, stderr = rerun.communicate(timeout=600)
    assert rerun.returncode == 0, stderr[-3000:]
    assert "removed namespaces and files left by a killed run" in stderr
    assert owned_by(killed.pid) == [] and owned_by(rerun.pid) == []
    for folder in linkemu.scratch_dirs():  # the forwarder's control file, the PKI
        assert list(folder.glob(f"{linkemu.PREFIX}-{killed.pid}-*")) == []
    assert [p for p in tree if alive(p)] == []


def descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        for task in Path(f"/proc/{p}/task").glob("*"):
            try:
                kids = [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                continue
            out += kids
            todo += kids
    return out
