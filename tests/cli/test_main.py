"""The console script must answer --help and --version with no extras."""

from __future__ import annotations

import subprocess
import sys

import pytest

from secfepas_sdk import __version__
from secfepas_sdk.cli.main import main


def test_version_flag(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"secfepas {__version__}"


def test_help_lists_commands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    assert "secfepas" in capsys.readouterr().out


def test_help_imports_no_heavy_backend() -> None:
    """--help must work without the extras: it may not import them."""
    code = (
        "import sys\n"
        "from secfepas_sdk.cli.main import build_parser\n"
        "build_parser()\n"
        "heavy = {'cv2', 'onnxruntime', 'tenseal', 'onnx', 'paho', 'fhir', 'torch'}\n"
        "loaded = sorted(heavy & {m.split('.')[0] for m in sys.modules})\n"
        "print(','.join(loaded))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout.strip()
    assert out == ""
