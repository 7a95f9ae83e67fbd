"""`secfepas certs init`, `secfepas edge serve` and `secfepas camera run` as separate
real processes, as an operator and a camera would run them."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

from secfepas_sdk.models.bundled import demo_model_dir, sample_video_path


def _secfepas() -> list[str]:
    exe = shutil.which("secfepas")
    return [exe] if exe else [sys.executable, "-m", "secfepas_sdk.cli.main"]


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_operator_and_camera_commands(tmp_path: Path) -> None:
    subprocess.run(
        [*_secfepas(), "certs", "init", str(tmp_path / "pki")], check=True, capture_output=True
    )
    demo_model_dir(tmp_path / "models")
    port, metrics_port = _free_port(), _free_port()
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
        assert len(lines) == 2
        for rec in lines:
            assert list(rec) == ["index", "t", "level", "probabilities", "seconds", "bytes"]
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
