"""`secfepas demo` as a user runs it: a real process, real sockets, exit code 0."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys


def _secfepas() -> list[str]:
    exe = shutil.which("secfepas")
    return [exe] if exe else [sys.executable, "-m", "secfepas_sdk.cli.main"]


def test_demo_json_exits_zero() -> None:
    proc = subprocess.run(
        [*_secfepas(), "demo", "--json", "--max-frames", "3"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    records = [json.loads(line) for line in proc.stdout.splitlines()]
    assert records[0]["event"] == "start"
    frames = [r for r in records if r["event"] == "frame"]
    assert len(frames) == 3
    for f in frames:
        assert set(f) == {"event", "index", "t", "level", "probabilities", "seconds", "bytes"}
        assert 0 <= f["level"] < 4 and abs(sum(f["probabilities"]) - 1) < 1e-3
        assert f["bytes"] > 0
    summary = records[-1]
    assert summary["event"] == "summary" and summary["analysed"] == 3
    assert summary["errors"] == 0


def test_demo_human_output() -> None:
    proc = subprocess.run(
        [*_secfepas(), "demo", "--max-frames", "1", "--pace", "source"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "edge listening on 127.0.0.1:" in proc.stdout
    assert "pain=" in proc.stdout and "summary: 1 frame(s) analysed securely" in proc.stdout
