"""Edge servers as real `secfepas edge serve` processes, for the deployment and fault tests."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from secfepas_sdk.certs import Pki
from testkit.ports import free_port
from testkit.proctree import descendants
from testkit.wait import wait_until


def http_get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as r:
            return int(r.status), r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, ""
    except OSError:
        return 0, ""


def metric(port: int, name: str) -> float:
    """One sample of the edge's Prometheus text (0 when the edge does not answer)."""
    _status, text = http_get(port, "/metrics")
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


@dataclass
class Edge:
    """One `secfepas edge serve` replica, in its own process group."""

    name: str
    workdir: Path
    pki: Pki
    models: Path
    port: int = field(default_factory=free_port)
    health_port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    groups: list[int] = field(default_factory=list)
    extra: str = ""  # more edge.toml lines
    max_sessions: int = 2

    def start(self) -> None:
        self.launch()
        self.wait_healthy()

    def launch(self) -> None:
        toml = self.workdir / f"{self.name}.toml"
        toml.write_text(
            f'host = "127.0.0.1"\nport = {self.port}\nmodel_dir = "{self.models}"\n'
            f'ca = "{self.pki.ca_cert}"\ncert = "{self.pki.edge_cert}"\n'
            f'key = "{self.pki.edge_key}"\nmetrics_port = {self.health_port}\n'
            f"max_sessions = {self.max_sessions}\n" + (self.extra or "max_queue = 8\n")
        )
        log = (self.workdir / f"{self.name}.log").open("ab")
        cmd = [sys.executable, "-m", "secfepas_sdk.cli.main", "edge", "serve"]
        self.proc = subprocess.Popen(
            [*cmd, "--config", str(toml), "--grace", "2"],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        )
        self.groups.append(self.proc.pid)

    def wait_healthy(self) -> None:
        wait_until(self.healthy, 90, what=f"{self.name} healthy")

    def group_alive(self) -> bool:
        """Does any process of this replica's first process group remain (orphaned workers)?"""
        try:
            os.killpg(self.groups[0], 0)
        except ProcessLookupError:
            return False
        return True

    def healthy(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            log = (self.workdir / f"{self.name}.log").read_text(errors="replace")
            raise AssertionError(f"{self.name} exited {self.proc.returncode}:\n{log}")
        return http_get(self.health_port, "/healthz")[0] == 200

    def kill(self) -> None:
        """SIGKILL the edge's main process only, as a crash or OOM kill would."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)

    def cleanup(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        for pgid in self.groups:  # orphaned workers of a killed replica, if any
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)

    def descendants(self) -> int:
        """How many processes (workers, model host) descend from this edge."""
        return len(self.descendant_pids())

    def descendant_pids(self) -> list[int]:
        assert self.proc is not None
        return descendants(self.proc.pid)
