"""`secfepas camera run` through the real CLI, beside `certs init` and `edge serve` as
separate real processes: frames, summary, exit status, outbox location."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest
from skimage import data
from testkit.ports import free_port

from secfepas_sdk.certs import Pki, init_pki
from secfepas_sdk.models.bundled import demo_model_dir, sample_video_path


def _secfepas() -> list[str]:
    exe = shutil.which("secfepas")
    return [exe] if exe else [sys.executable, "-m", "secfepas_sdk.cli.main"]


def test_operator_and_camera_commands(tmp_path: Path) -> None:
    subprocess.run(
        [*_secfepas(), "certs", "init", str(tmp_path / "pki")], check=True, capture_output=True
    )
    demo_model_dir(tmp_path / "models")
    port, metrics_port = free_port(), free_port()
    (tmp_path / "edge.toml").write_text(
        f'model_dir = "models"\nca = "pki/ca.pem"\ncert = "pki/edge.pem"\nkey = "pki/edge.key"\n'
        f"port = {port}\nmetrics_port = {metrics_port}\nmax_sessions = 1\n"
    )
    edge = subprocess.Popen(
        [*_secfepas(), "edge", "serve", "--config", str(tmp_path / "edge.toml")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "SECFEPAS_EDGE_HOST": "127.0.0.1"},
    )
    try:
        assert edge.stdout is not None
        line = edge.stdout.readline()
        assert f"listening on 127.0.0.1:{port}" in line, line + (
            edge.stderr.read() if edge.stderr else ""
        )
        pki = tmp_path / "pki"
        cam = subprocess.run(
            [
                *_secfepas(),
                "camera",
                "run",
                "--edge",
                f"127.0.0.1:{port}",
                "--ca",
                str(pki / "ca.pem"),
                "--cert",
                str(pki / "cameras" / "camera-1.pem"),
                "--key",
                str(pki / "cameras" / "camera-1.key"),
                "--model",
                "demo-pain-cnn",
                "--source",
                str(sample_video_path()),
                "--json",
                "--max-frames",
                "2",
                "--period",
                "1",  # the default constant schedule: one inference per second
            ],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert cam.returncode == 0, cam.stderr[-2000:]
        lines = [json.loads(x) for x in cam.stdout.splitlines()]
        assert len(lines) == 3  # two frames, then the summary
        for rec in lines[:2]:
            assert list(rec) == ["index", "t", "level", "probabilities", "seconds", "bytes"]
        assert lines[2]["summary"]["analysed"] == 2 and lines[2]["summary"]["failed"] == 0
        url = f"http://127.0.0.1:{metrics_port}"
        metrics = urllib.request.urlopen(f"{url}/metrics", timeout=5).read().decode()
        # Two analysed frames, and dummy inferences in the slots without a new face.
        ok = re.search(r'secfepas_edge_inferences_total\{outcome="ok"\} (\d+)', metrics)
        assert ok is not None and int(ok.group(1)) >= 2, metrics
        assert urllib.request.urlopen(f"{url}/healthz", timeout=5).status == 200
    finally:
        edge.send_signal(signal.SIGTERM)
        try:
            code = edge.wait(30)
        except subprocess.TimeoutExpired:
            edge.kill()
            raise
    assert code == 0


SUMMARY = re.compile(
    r"^secfepas camera run: selected (\d+), analysed (\d+), dropped (\d+), "
    r"failed (\d+), alerts (\d+)$",
    re.M,
)


def _cli(*args: str) -> list[str]:
    return [*_secfepas(), *args]


@dataclass
class Edge:
    proc: subprocess.Popen[str]
    port: int

    def kill(self) -> None:
        """SIGKILL the edge and its workers (the whole group): it disappears."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)


def _start_edge(pki: Pki, models: Path) -> Edge:
    proc = subprocess.Popen(
        _cli(
            "edge",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--no-metrics",
            "--max-sessions",
            "1",
            "--model-dir",
            str(models),
            "--ca",
            str(pki.ca_cert),
            "--cert",
            str(pki.edge_cert),
            "--key",
            str(pki.edge_key),
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    found = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
    assert found, line
    return Edge(proc, int(found.group(1)))


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> tuple[Pki, Path, Path]:
    """The PKI, the demo model and a 6 s clip of a face at 10 fps."""
    root = tmp_path_factory.mktemp("site")
    pki = init_pki(root / "pki")
    models = demo_model_dir(root / "models")
    return pki, models, _write_clip(root / "face.avi", frames=60, fps=10.0)


def _write_clip(path: Path, *, frames: int, fps: float) -> Path:
    """The astronaut's face with sensor noise, ``frames`` frames at ``fps``."""
    face = cv2.resize(cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR), (320, 320))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), fps, (320, 320))
    rng = np.random.default_rng(3)
    for _ in range(frames):
        noisy = np.clip(face + rng.normal(0, 2.0, face.shape), 0, 255).astype(np.uint8)
        writer.write(noisy)
    writer.release()
    return path


@pytest.fixture(scope="module")
def edge(site: tuple[Pki, Path, Path]) -> Iterator[Edge]:
    running = _start_edge(site[0], site[1])
    yield running
    running.proc.send_signal(signal.SIGTERM)
    running.proc.wait(60)


def _camera(pki: Pki, port: int, clip: Path, *extra: str) -> list[str]:
    cam = pki.camera("camera-1")
    return _cli(
        "camera",
        "run",
        "--edge",
        f"127.0.0.1:{port}",
        "--ca",
        str(pki.ca_cert),
        "--cert",
        str(cam.cert),
        "--key",
        str(cam.key),
        "--model",
        "demo-pain-cnn",
        "--source",
        str(clip),
        *extra,
    )


def test_summary_on_stderr_and_the_default_outbox_under_xdg_state(
    site: tuple[Pki, Path, Path], edge: Edge, tmp_path: Path
) -> None:
    pki, _, clip = site
    work = tmp_path / "work"
    work.mkdir()
    env = {**os.environ, "XDG_STATE_HOME": str(tmp_path / "state")}
    proc = subprocess.run(
        _camera(pki, edge.port, clip, "--pace", "source", "--sink", "console:"),
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    (summary,) = SUMMARY.findall(proc.stderr)
    selected, analysed, dropped, failed, alerts = map(int, summary)
    assert analysed >= 1 and selected >= analysed + dropped and failed == 0
    alert_lines = [line for line in proc.stderr.splitlines() if line.startswith("{")]
    assert alerts == len(alert_lines)  # the console sink's lines, each one alert
    assert (tmp_path / "state" / "secfepas" / "outbox.sqlite").is_file()
    assert list(work.iterdir()) == []  # nothing dropped into the working directory


def test_json_summary_and_explicit_outbox(
    site: tuple[Pki, Path, Path], edge: Edge, tmp_path: Path
) -> None:
    pki, _, clip = site
    outbox = tmp_path / "somewhere" / "alerts.db"
    proc = subprocess.run(
        _camera(
            pki,
            edge.port,
            clip,
            "--pace",
            "source",
            "--json",
            "--sink",
            "console:",
            "--outbox",
            str(outbox),
        ),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    frames, last = lines[:-1], lines[-1]
    assert set(last) == {"summary"}
    assert set(last["summary"]) == {"selected", "analysed", "dropped", "failed", "alerts"}
    assert last["summary"]["analysed"] == len(frames) >= 1
    assert last["summary"]["failed"] == 0
    assert outbox.is_file()
    assert not SUMMARY.search(proc.stderr)  # with --json the summary is the JSON line


def test_edge_gone_mid_run_exits_non_zero_with_a_summary(
    site: tuple[Pki, Path, Path], tmp_path: Path
) -> None:
    pki, models, _ = site
    # 20 one-second slots: far more work than the run can finish before the kill, so
    # the edge is always gone while slots remain (the 6 s clip could all be served
    # between the first output line and the kill on a fast edge).
    clip = _write_clip(tmp_path / "long.avi", frames=20, fps=1.0)
    doomed = _start_edge(pki, models)
    camera = subprocess.Popen(
        _camera(pki, doomed.port, clip, "--json", "--period", "1"),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert camera.stdout is not None and camera.stderr is not None
        first = json.loads(camera.stdout.readline())  # one frame analysed: the session works
        assert "level" in first
        doomed.kill()
        rest, err = camera.communicate(timeout=240)
    finally:
        doomed.kill()
        if camera.poll() is None:
            camera.kill()
            camera.wait(10)
    assert camera.returncode == 1, err
    summary = json.loads(rest.splitlines()[-1])["summary"]
    assert summary["failed"] >= 1 and summary["analysed"] >= 1
    assert "Traceback" not in err
    assert err.splitlines()[-1].startswith("secfepas: error: ")
    assert "inference(s) failed" in err.splitlines()[-1]
