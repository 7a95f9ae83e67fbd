"""Every expected CLI failure is one line ``secfepas: error: ...``, exit 1, no traceback.

Each mistake is made through the real console entry point in a subprocess, as a
user makes it (issue 11)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from secfepas_sdk.certs import Pki, init_pki
from secfepas_sdk.models.bundled import demo_model_dir


def secfepas(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> tuple[int, str]:
    """Run ``secfepas ARGS``; the exit status and stderr."""
    done = subprocess.run(
        [sys.executable, "-m", "secfepas_sdk.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
        cwd=cwd,
    )
    return done.returncode, done.stderr


def one_error_line(stderr: str) -> str:
    """The single ``secfepas: error:`` line; fails on a traceback or extra lines."""
    assert "Traceback" not in stderr, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("secfepas: error: "), stderr
    return lines[0]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> tuple[Pki, Path]:
    root = tmp_path_factory.mktemp("site")
    return init_pki(root / "pki"), demo_model_dir(root / "models")


def _edge_args(site: tuple[Pki, Path]) -> list[str]:
    pki, models = site
    return [
        "edge", "serve", "--model-dir", str(models),
        "--ca", str(pki.ca_cert), "--cert", str(pki.edge_cert), "--key", str(pki.edge_key),
    ]  # fmt: skip


@contextmanager
def busy_port() -> Iterator[int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield int(s.getsockname()[1])


def test_edge_port_already_in_use(site: tuple[Pki, Path]) -> None:
    with busy_port() as port:
        code, err = secfepas(*_edge_args(site), "--listen", f"127.0.0.1:{port}", "--no-metrics")
    assert code == 1
    line = one_error_line(err)
    assert f"cannot listen for cameras on 127.0.0.1:{port}" in line
    assert "address already in use" in line


def test_metrics_port_already_in_use(site: tuple[Pki, Path]) -> None:
    with busy_port() as port:
        code, err = secfepas(
            *_edge_args(site), "--listen", "127.0.0.1:0", "--metrics-port", str(port)
        )
    assert code == 1
    line = one_error_line(err)
    assert f"cannot serve metrics on 127.0.0.1:{port}: address already in use" in line


def test_camera_edge_address_without_port(site: tuple[Pki, Path]) -> None:
    pki, _ = site
    cam = pki.camera("camera-1")
    code, err = secfepas(
        "camera", "run", "--edge", "127.0.0.1", "--ca", str(pki.ca_cert), "--cert", str(cam.cert),
        "--key", str(cam.key), "--model", "demo-pain-cnn", "--source", "synthetic:",
    )  # fmt: skip
    assert code == 1
    assert "HOST:PORT" in one_error_line(err)


@pytest.mark.parametrize(
    "content", [b"hello\n", b"", os.urandom(4096)], ids=["text", "empty", "random"]
)
def test_model_import_of_a_file_that_is_not_onnx(tmp_path: Path, content: bytes) -> None:
    bad = tmp_path / "model.onnx"
    bad.write_bytes(content)
    code, err = secfepas("model", "import", str(bad), str(tmp_path / "pkg"))
    assert code == 1
    assert f"{bad} is not an ONNX model" in one_error_line(err)
    assert not (tmp_path / "pkg").exists()


def test_camera_inspect_of_random_bytes_named_png(tmp_path: Path) -> None:
    bad = tmp_path / "face.png"
    bad.write_bytes(os.urandom(3000))
    code, err = secfepas("camera", "inspect", str(bad))
    assert code == 1  # not "frames 0" and exit 0
    assert "no frame could be read" in one_error_line(err)  # and no FFmpeg chatter


def test_edge_serve_without_arguments_names_the_missing_flags(tmp_path: Path) -> None:
    code, err = secfepas("edge", "serve", cwd=tmp_path)
    assert code == 1
    line = one_error_line(err)
    for flag in ("--model-dir", "--ca", "--cert", "--key"):
        assert flag in line
    assert "_FromFile" not in line and "pydantic" not in line


def test_typo_in_edge_toml_names_file_key_and_closest_key(tmp_path: Path) -> None:
    toml = tmp_path / "edge.toml"
    toml.write_text('model_dir = "m"\nca = "a"\ncert = "c"\nkey = "k"\nmax_sesions = 3\n')
    code, err = secfepas("edge", "serve", "--config", str(toml))
    assert code == 1
    line = one_error_line(err)
    assert str(toml) in line and "'max_sesions'" in line and "did you mean 'max_sessions'" in line


def test_unknown_edge_environment_variable_is_named_with_the_closest(tmp_path: Path) -> None:
    code, err = secfepas("edge", "serve", env={"SECFEPAS_EDGE_MAX_SESION": "3"}, cwd=tmp_path)
    assert code == 1
    warning, error = err.strip().splitlines()
    assert "WARNING" in warning
    assert "SECFEPAS_EDGE_MAX_SESION" in warning and "SECFEPAS_EDGE_MAX_SESSIONS" in warning
    assert error.startswith("secfepas: error: missing edge setting")


BLOCK_EXTRAS = """
import sys
from importlib.abc import MetaPathFinder

class NoExtras(MetaPathFinder):
    blocked = {"cv2", "onnxruntime", "tenseal", "pydantic_settings"}

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in self.blocked:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, NoExtras())
from secfepas_sdk.cli.main import main
sys.exit(main(["demo"]))
"""


def test_demo_with_only_the_core_names_the_all_extra_at_once() -> None:
    done = subprocess.run(
        [sys.executable, "-c", BLOCK_EXTRAS], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1
    line = one_error_line(done.stderr)
    assert "[all]" in line and "pip install '.[all]'" in line
    for module in ("cv2", "onnxruntime", "tenseal", "pydantic_settings"):
        assert module in line


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (
            ["model", "import", "only-one.onnx"],
            "secfepas: error: model import: the following arguments are required: out_dir "
            "(see secfepas model import --help)",
        ),
        (
            ["bench", "--repeat", "x"],
            "secfepas: error: bench: argument --repeat: invalid int value: 'x' "
            "(see secfepas bench --help)",
        ),
        (
            ["nosuchcommand"],
            "secfepas: error: argument COMMAND: invalid choice: 'nosuchcommand' (choose from ",
        ),
        (
            ["model", "import", "x.onnx", "--out", "d"],
            "secfepas: error: unrecognized arguments: --out (see secfepas --help)",
        ),
        (
            ["--bogus"],
            "secfepas: error: unrecognized arguments: --bogus (see secfepas --help)",
        ),
    ],
    ids=["missing-positional", "bad-type", "unknown-command", "extra-option", "top-level-option"],
)
def test_usage_mistakes_are_one_line_too(argv: list[str], expected: str) -> None:
    code, err = secfepas(*argv)
    assert code == 2  # argparse's status for usage errors, kept apart from failures (1)
    line = one_error_line(err)
    assert line.startswith(expected)
    assert line.count("secfepas:") == 1  # the prefix once, not "secfepas: error: secfepas: "
    assert line.endswith("--help)")
