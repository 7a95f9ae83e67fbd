"""Ctrl-C in a terminal: `secfepas demo` and `secfepas edge serve` stop gracefully.

A terminal's Ctrl-C sends SIGINT to the whole foreground process group, worker
processes included (`kill -INT <pid>` does not show the bug). So each command
runs in its own session with a pseudo-terminal as its controlling terminal, and
the test types ^C into it: the kernel's line discipline delivers the signal.
"""

from __future__ import annotations

import asyncio
import os
import pty
import re
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
from testkit.wait import WaitTimeout, wait_until

from secfepas_sdk.camera.client import SecureInferenceClient
from secfepas_sdk.certs import init_pki
from secfepas_sdk.models.bundled import demo_model_dir
from secfepas_sdk.protocol.events import Close
from secfepas_sdk.protocol.transport import TlsFiles

# Become the session's controlling terminal (stdin is the pty), then run the command.
_WITH_TTY = (
    "import fcntl, os, sys, termios; fcntl.ioctl(0, termios.TIOCSCTTY, 0); "
    "os.execv(sys.executable, [sys.executable, '-m', 'secfepas_sdk.cli.main', *sys.argv[1:]])"
)
_BAD = ("Traceback", "KeyboardInterrupt", "Unhandled exception", "Error{", "shutting_down")


class Terminal:
    """A command on a pseudo-terminal; collects everything it prints."""

    def __init__(self, *args: str) -> None:
        self.master, slave = pty.openpty()
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _WITH_TTY, *args],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            start_new_session=True,
            env={**os.environ, "COLUMNS": "200"},
        )
        os.close(slave)
        self._chunks: list[bytes] = []
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                chunk = os.read(self.master, 65536)
            except OSError:  # EIO: every process holding the terminal has exited
                return
            if not chunk:
                return
            with self._lock:
                self._chunks.append(chunk)

    @property
    def output(self) -> str:
        with self._lock:
            return b"".join(self._chunks).decode("utf-8", "replace")

    def wait_for(self, pattern: str, timeout: float) -> re.Match[str]:
        def found() -> re.Match[str] | None:
            match = re.search(pattern, self.output)
            if match is None and self.proc.poll() is not None:
                self._reader.join(5)  # what it printed last, up to the terminal's end
                match = re.search(pattern, self.output)
                if match is None:
                    raise AssertionError(f"exited before printing {pattern!r}:\n{self.output}")
            return match

        try:
            return wait_until(found, timeout, what=f"{pattern!r} in the output")
        except WaitTimeout as exc:
            raise WaitTimeout(f"{exc}:\n{self.output}") from None

    def ctrl_c(self) -> None:
        os.write(self.master, b"\x03")  # the line discipline sends SIGINT to the group

    def finish(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"still running after {timeout} s:\n{self.output}") from None
        finally:
            if self.proc.poll() is None:
                os.killpg(self.proc.pid, 9)
                self.proc.wait(5)
            self._reader.join(5)
            os.close(self.master)


def test_edge_serve_ctrl_c_closes_open_session_gracefully(tmp_path: Path) -> None:
    pki = init_pki(tmp_path / "pki")
    models = demo_model_dir(tmp_path / "models")
    term = Terminal(
        "-v",
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
    )
    try:
        port = int(term.wait_for(r"listening on 127\.0\.0\.1:(\d+)", 60).group(1))
        cam = pki.camera("camera-1")
        tls = TlsFiles(ca=pki.ca_cert, cert=cam.cert, key=cam.key)

        async def camera() -> object:
            client = SecureInferenceClient(("127.0.0.1", port), tls, "demo-pain-cnn")
            await client.connect()
            shape = client.manifest["input_shape"]
            await client.infer(np.zeros(shape, np.float32))  # a worker is serving this session
            term.ctrl_c()  # while the session is open and idle
            stream = client._stream
            assert stream is not None
            return await stream.next_event(60)

        event = asyncio.run(camera())
    finally:
        status = term.finish(60)
    out = term.output
    assert isinstance(event, Close), (event, out)  # the edge said goodbye, it did not cut
    assert status == 0, out
    assert not [bad for bad in _BAD if bad in out], out
    assert re.search(r"session \w+ ended after 1 inference", out), out
    assert "edge stopped" in out


def test_demo_ctrl_c_closes_the_session_and_prints_a_summary() -> None:
    term = Terminal("-v", "demo", "--pace", "realtime")
    try:
        term.wait_for(r"\[  1\] frame", 300)  # a session is open, the next frame is coming
        term.ctrl_c()
        term.wait_for(r"summary: \d+ frame\(s\) analysed", 60)
    finally:
        status = term.finish(60)
    out = term.output
    assert status == 0, out
    assert not [bad for bad in _BAD if bad in out], out
    assert re.search(r"session \w+ ended after \d+ inference", out), out  # the edge's log
    assert "interrupted" in out
