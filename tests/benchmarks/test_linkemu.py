"""The link emulator behind benchmarks/network_profiles.py: a shaped link between two
fresh namespaces reaches its RTT and rate, and no namespace outlives its owner.

These need root, iproute2 and /dev/net/tun (this project's machines and CI have
them): without them they fail, saying so, rather than skip.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from testkit.netns import require_netns

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCH))
import linkemu  # noqa: E402 - benchmark scripts, not a package
import linkprobe  # noqa: E402


def mine() -> list[str]:
    return [
        n for n in linkemu.list_namespaces() if n.startswith(f"{linkemu.PREFIX}-{os.getpid()}-")
    ]


def test_shaped_link_reaches_its_rtt_and_rate_and_leaves_nothing() -> None:
    require_netns()
    with linkemu.Link(linkemu.Shape(name="t", rate_mbit=100, rtt_ms=10)) as link:
        assert len(mine()) == 2
        base = linkprobe.calibrate(link, pings=20)
        m = linkprobe.measure(link, pings=30, bulk_s=1.5)
        forwarder = link._proc
    assert 0 <= base < 5
    assert 9.0 <= m.rtt_ms_median <= 15.0, m  # a loaded machine adds a little, never less
    assert m.rtt_ms_min >= 9.0, m  # the delay is really there, each way
    assert 60 <= m.mbit_s_steady <= 106, m  # tbf's rate, and never above it
    assert mine() == []
    assert forwarder is not None and forwarder.poll() is not None


def test_loopback_is_one_namespace_and_no_forwarder() -> None:
    require_netns()
    with linkemu.Link(linkemu.Shape(name="loopback")) as link:
        assert link.ns_a == link.ns_b and mine() == [link.ns_a]
        assert (link.addr_a, link.addr_b) == ("127.0.0.1", "127.0.0.1")
        m = linkprobe.measure(link, pings=10, bulk_s=0.2)
        assert m.rtt_ms_median < 5 and m.forwarder_cores == 0.0
        with pytest.raises(RuntimeError):
            link.set_delay(0.01)
    assert mine() == []


def test_stale_namespaces_are_removed_with_what_runs_inside() -> None:
    require_netns()
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    name = f"{linkemu.PREFIX}-{int(gone.stdout)}-a"  # its owner has exited
    subprocess.run(["ip", "netns", "add", name], check=True)
    leftover = Path("/dev/shm") / f"{name}-x.delay"
    leftover.write_text("0\n")
    sleeper = subprocess.Popen(["ip", "netns", "exec", name, "sleep", "300"])
    try:
        live = linkemu.make_namespace("z")  # ours, owner alive: must stay
        removed = linkemu.remove_stale()
        assert name in removed and str(leftover) in removed and not leftover.exists()
        assert name not in linkemu.list_namespaces() and live in linkemu.list_namespaces()
        assert sleeper.wait(10) != 0  # killed, not left running in a deleted namespace
    finally:
        if sleeper.poll() is None:
            sleeper.kill()
            sleeper.wait()
        linkemu.delete_namespace(name)
        linkemu.delete_namespace(f"{linkemu.PREFIX}-{os.getpid()}-z")
        leftover.unlink(missing_ok=True)
    assert mine() == []


def test_shapes_are_checked() -> None:
    for bad in ({"rate_mbit": 0, "rtt_ms": 1}, {"rate_mbit": 10, "rtt_ms": -1}, {"rate_mbit": 10}):
        with pytest.raises(ValueError):
            linkemu.Shape(name="bad", **bad)  # type: ignore[arg-type]


def test_the_forwarder_refuses_foreign_namespaces() -> None:
    out = subprocess.run([sys.executable, str(BENCH / "linkemu.py"), "forward", "blue", "green",
                          "/dev/null"], capture_output=True, text=True)  # fmt: skip
    assert out.returncode == 2 and "not one of our namespaces" in out.stderr
