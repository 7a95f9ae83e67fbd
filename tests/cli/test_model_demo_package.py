"""`secfepas model demo-package`: a first model directory for an edge."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from secfepas_sdk.cli.main import main
from secfepas_sdk.edge.registry import ModelRegistry


def test_demo_package_writes_a_package_an_edge_serves(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "models" / "demo"
    assert main(["model", "demo-package", str(target)]) == 0
    assert "demo-pain-cnn" in capsys.readouterr().out
    assert not target.is_symlink() and (target / "private").is_dir()  # a copy, not a link
    assert main(["model", "verify", str(target)]) == 0
    assert json.loads(capsys.readouterr().out)["weights_checked"] is True
    assert len(ModelRegistry.load(tmp_path / "models")) == 1


def test_demo_package_refuses_an_existing_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["model", "demo-package", str(tmp_path)]) == 1
    assert "already exists" in capsys.readouterr().err
