"""The README's quickstarts run as written.

Each fenced block after a ``<!-- quickstart: NAME -->`` comment is extracted and
run in an empty directory that holds the inputs the README names (``face.jpg``,
``bed-12.mp4``, ``MODEL.onnx``), with ``secfepas`` being this interpreter's CLI.
What the harness changes, and only that:
- ``pip install`` lines are skipped (this environment has the extras installed,
  and an index would not have the SDK);
- port 7443 becomes a free port and the edge's metrics port is free too
  (``SECFEPAS_EDGE_METRICS_PORT=0``), so parallel test runs never collide;
- ``secfepas edge serve`` runs in the background until it listens, as in a
  second terminal, and is stopped with SIGTERM at the end.
"""

from __future__ import annotations

import json
import os
import re
import selectors
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from testkit.ports import free_port

from secfepas_sdk.models.bundled import demo_model_path, sample_video_path
from secfepas_sdk.models.package import reference_onnx

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCK = re.compile(
    r"<!-- quickstart: (?P<name>[\w-]+) -->\n```(?P<lang>bash|python)\n(?P<body>.*?)\n```", re.S
)


def quickstarts() -> dict[str, tuple[str, str]]:
    found = {m["name"]: (m["lang"], m["body"]) for m in BLOCK.finditer(README.read_text())}
    assert found, "no quickstart block in README.md"
    return found


def shell_commands(body: str, port: int) -> list[str]:
    """The block's commands, continuation lines joined, pip lines dropped."""
    joined = body.replace("\\\n", " ").replace("7443", str(port))
    commands = []
    for line in joined.splitlines():
        command = line.strip()
        if command and not command.startswith(("#", "pip install")):
            commands.append(command)
    return commands


@pytest.fixture
def workdir(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    import cv2
    from skimage import data

    cv2.imwrite(str(tmp_path / "face.jpg"), cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR))
    shutil.copy(sample_video_path(), tmp_path / "bed-12.mp4")
    ref = reference_onnx(demo_model_path())
    assert ref is not None
    shutil.copy(ref, tmp_path / "MODEL.onnx")
    bin_dir = tmp_path / ".bin"
    bin_dir.mkdir()
    shim = bin_dir / "secfepas"
    shim.write_text(f'#!/bin/sh\nexec {sys.executable} -m secfepas_sdk.cli.main "$@"\n')
    shim.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    env["SECFEPAS_EDGE_METRICS_PORT"] = "0"
    return tmp_path, env


def run_shell(commands: list[str], cwd: Path, env: dict[str, str]) -> str:
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", "\n".join(commands)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, f"{commands}\n{done.stderr}"
    return done.stdout


def run_python(body: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    (cwd / "quickstart.py").write_text(body + "\n")
    done = subprocess.run(
        [sys.executable, "quickstart.py"], cwd=cwd, env=env, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done


def test_every_marked_block_is_run_here() -> None:
    assert set(quickstarts()) == {
        "camera-cli", "camera-python", "camera-push", "edge", "edge-local-camera", "model",
        "alerts",
    }  # fmt: skip


def test_camera_cli_quickstart(workdir: tuple[Path, dict[str, str]]) -> None:
    cwd, env = workdir
    out = run_shell(shell_commands(quickstarts()["camera-cli"][1], 0), cwd, env).splitlines()
    assert json.loads(out[0])["faces"][0]["score"] > 0.9
    summary = json.loads(out[-1])["summary"]
    assert summary["frames"] > 100 and summary["selected"] >= 1


@pytest.mark.parametrize("name", ["camera-python", "camera-push"])
def test_camera_python_quickstarts(name: str, workdir: tuple[Path, dict[str, str]]) -> None:
    cwd, env = workdir
    run_python(quickstarts()[name][1], cwd, env)


def test_alerts_quickstart(workdir: tuple[Path, dict[str, str]]) -> None:
    cwd, env = workdir
    alert = json.loads(run_python(quickstarts()["alerts"][1], cwd, env).stderr.strip())
    assert alert["kind"] == "pain" and alert["level"] == 3 and alert["camera_id"] == "bed-12"


def _start_edge(command: str, cwd: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    edge = subprocess.Popen(
        ["bash", "-c", f"exec {command}"], cwd=cwd, env=env, stdout=subprocess.PIPE, text=True
    )
    assert edge.stdout is not None
    selector = selectors.DefaultSelector()
    selector.register(edge.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if selector.select(timeout=deadline - time.monotonic()):
            line = edge.stdout.readline()
            if "listening on" in line:
                return edge
            assert line, f"the edge exited with status {edge.wait()}"
    edge.kill()
    raise AssertionError("the edge did not listen within 120 s")


def test_edge_quickstart_serves_the_local_camera(workdir: tuple[Path, dict[str, str]]) -> None:
    cwd, env = workdir
    port = free_port()
    setup = shell_commands(quickstarts()["edge"][1], port)
    serve = [c for c in setup if c.startswith("secfepas edge serve")]
    assert len(serve) == 1 and setup[-1] == serve[0]
    run_shell(setup[:-1], cwd, env)
    edge = _start_edge(serve[0], cwd, env)
    try:
        camera = shell_commands(quickstarts()["edge-local-camera"][1], port)
        lines = run_shell(camera, cwd, env).splitlines()
    finally:
        edge.send_signal(signal.SIGTERM)
        edge.wait(timeout=60)
    records = [json.loads(line) for line in lines if line.startswith("{")]
    frames = [r for r in records if "summary" not in r]
    assert len(frames) == 2
    assert all(f["bytes"] > 1_000_000 for f in frames)
    assert records[-1]["summary"]["analysed"] == 2 and records[-1]["summary"]["failed"] == 0


@pytest.mark.slow  # an import, a selftest and three bench inferences: about a minute
def test_model_quickstart(workdir: tuple[Path, dict[str, str]]) -> None:
    cwd, env = workdir
    out = run_shell(shell_commands(quickstarts()["model"][1], 0), cwd, env)
    assert (cwd / "PKG" / "manifest.json").is_file()
    assert '"argmax_match": true' in out and "median:" in out
