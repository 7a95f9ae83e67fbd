"""Progress lines: on a terminal's stderr only, never with --json or when redirected."""

from __future__ import annotations

import io
import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest

from secfepas_sdk.cli.progress import Progress
from secfepas_sdk.models.bundled import demo_model_path
from secfepas_sdk.models.package import reference_onnx


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_draws_on_a_terminal_and_erases_itself() -> None:
    term = FakeTerminal()
    with Progress("bench", stream=term) as progress:
        progress.update("inference 1/3")
        with progress.paused():
            term.write("<row>")
    out = term.getvalue()
    assert "\rbench: inference 1/3" in out
    before, after = out.split("<row>")
    assert before.endswith("\r")  # the line was erased before the caller printed
    assert "bench: inference 1/3" in after  # and drawn again after
    assert out.endswith("\r") and out.rstrip("\r").endswith(" ")  # erased at the end


@pytest.mark.parametrize("enabled", [True, False])
def test_progress_is_silent_off_a_terminal_or_when_disabled(enabled: bool) -> None:
    stream = io.StringIO() if enabled else FakeTerminal()
    with Progress("bench", stream=stream, enabled=enabled) as progress:
        progress.update("inference 1/1")
        with progress.paused():
            pass
    assert stream.getvalue() == ""


def _run_on_pty(args: list[str]) -> tuple[int, str, str]:
    """Run ``secfepas ARGS`` with stderr on a pseudo-terminal; status, stdout, terminal text."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "secfepas_sdk.cli.main", *args],
        stdout=subprocess.PIPE,
        stderr=slave,
        text=True,
    )
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 4096)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    assert proc.stdout is not None
    stdout = proc.stdout.read()
    return proc.wait(timeout=120), stdout, b"".join(chunks).decode(errors="replace")


@pytest.fixture(scope="module")
def model_onnx() -> Path:
    ref = reference_onnx(demo_model_path())
    assert ref is not None
    return ref


def test_model_import_shows_progress_on_a_terminal_only(model_onnx: Path, tmp_path: Path) -> None:
    code, stdout, terminal = _run_on_pty(["model", "import", str(model_onnx), str(tmp_path / "a")])
    assert code == 0 and '"fingerprint"' in stdout
    assert f"\rimporting {model_onnx}: fold BN" in terminal
    done = subprocess.run(
        [sys.executable, "-m", "secfepas_sdk.cli.main", "model", "import", str(model_onnx),
         str(tmp_path / "b")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0 and done.stderr == ""


def test_bench_shows_progress_on_a_terminal_but_not_with_json() -> None:
    code, stdout, terminal = _run_on_pty(["bench", "--repeat", "1"])
    assert code == 0 and "median:" in stdout
    assert "\rbench: secure inference 1/1" in terminal
    code, stdout, terminal = _run_on_pty(["bench", "--repeat", "1", "--json"])
    assert code == 0 and stdout.startswith("{")
    assert "\r" not in terminal and "bench:" not in terminal
