"""Camera processes and what their journals and outboxes say, for the outage tests.

Each camera is a ``testkit/camproc.py`` process with its own sqlite outbox and
journal. The journal lists the alerts it meant to store (``intent``) and those it
stored durably (``stored``, with the time); a SIGKILL between the two leaves an
intent whose alert may or may not be in the outbox, so a receiver may hold it.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from secfepas_sdk.certs import Pki

CAMPROC = Path(__file__).with_name("camproc.py")


@dataclass
class Camera:
    """One camera process; restartable on the same outbox and journal."""

    name: str
    workdir: Path
    pki: Pki
    edge: str
    model: str
    sinks: list[str]
    period_s: float
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None
    runs: int = 0

    @property
    def journal(self) -> Path:
        return self.workdir / f"{self.name}.jsonl"

    @property
    def outbox(self) -> Path:
        return self.workdir / f"{self.name}.sqlite"

    @property
    def log(self) -> Path:
        return self.workdir / f"{self.name}.log"

    def start(self) -> None:
        files = self.pki.camera(self.name)
        cmd = [
            sys.executable, str(CAMPROC), "--edge", self.edge, "--ca", str(self.pki.ca_cert),
            "--cert", str(files.cert), "--key", str(files.key), "--model", self.model,
            "--period", str(self.period_s), "--frames", "flat", "--policy", "often",
            "--outbox", str(self.outbox), "--journal", str(self.journal),
        ]  # fmt: skip
        for uri in self.sinks:
            cmd += ["--sink", uri]
        env = {**os.environ, **self.env, "PYTHONPATH": os.pathsep.join(sys.path)}
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log, env=env)
        self.runs += 1

    def alive(self) -> bool:
        """True while running; an unexpected exit fails the test with the camera's log."""
        assert self.proc is not None
        if self.proc.poll() is None:
            return True
        log = self.log.read_text(errors="replace")
        raise AssertionError(f"{self.name} exited {self.proc.returncode}:\n{log[-4000:]}")

    def kill(self) -> None:
        """SIGKILL, as a watchdog or the OOM killer would: no flush, no goodbye."""
        assert self.proc is not None
        self.proc.kill()
        assert self.proc.wait(10) == -signal.SIGKILL

    def stop(self, timeout: float = 60.0) -> int:
        """SIGTERM: the pipeline ends and the alert service flushes; the exit status."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            raise AssertionError(f"{self.name} ignored SIGTERM for {timeout} s") from None

    def records(self) -> list[dict[str, Any]]:
        if not self.journal.exists():
            return []
        lines = self.journal.read_text().split("\n")[:-1]  # whole lines only
        return [json.loads(line) for line in lines if line]

    def ready(self) -> int:
        """How many runs have opened their session."""
        return sum("ready" in r for r in self.records())

    def stored(self) -> dict[str, float]:
        """alert_id -> when it was durably in the outbox (POSIX seconds)."""
        return {r["stored"]: float(r["t"]) for r in self.records() if "stored" in r}

    def intents(self) -> set[str]:
        return {r["intent"] for r in self.records() if "intent" in r}

    def pending(self, sink_prefix: str = "") -> int:
        """Deliveries waiting in the outbox (for sinks whose name starts with the prefix)."""
        if not self.outbox.exists():
            return 0
        db = sqlite3.connect(f"file:{self.outbox}?mode=ro", uri=True, timeout=10)
        try:
            row = db.execute(
                "SELECT COUNT(*) FROM deliveries WHERE sink LIKE ?", (sink_prefix + "%",)
            ).fetchone()
            return int(row[0])
        finally:
            db.close()

    def dead_letters(self) -> list[tuple[str, str, str]]:
        """(alert_id, sink, reason) of every delivery the outbox gave up on."""
        db = sqlite3.connect(f"file:{self.outbox}?mode=ro", uri=True, timeout=10)
        try:
            return list(db.execute("SELECT alert_id, sink, reason FROM dead_letters"))
        finally:
            db.close()
