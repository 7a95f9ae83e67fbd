"""The model registry verifies every package at start-up: a tampered or duplicated
package stops the edge before it accepts a single camera."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from secfepas_sdk.edge.registry import ModelRegistry
from secfepas_sdk.edge.server import Server
from secfepas_sdk.errors import ConfigError
from secfepas_sdk.models.bundled import demo_model_path


def _copy_demo(dst: Path) -> Path:
    shutil.copytree(demo_model_path(), dst)
    return dst


def test_loads_public_parts_only(tmp_path: Path) -> None:
    _copy_demo(tmp_path / "models" / "demo")
    (tmp_path / "models" / ".hidden").mkdir()  # skipped
    registry = ModelRegistry.load(tmp_path / "models")
    model = registry.get("demo-pain-cnn")
    assert model is not None and len(registry) == 1
    assert model.plan["input_shape"] == [1, 3, 64, 64]
    # Only JSON-able public parts stay in the server process (the workers load weights).
    json.dumps({"manifest": model.manifest, "plan": model.plan})
    public = {"model_id", "version", "path", "manifest", "plan"}
    assert set(model.__slots__) == public | {"budget_covered", "budget_stated"}  # counts only
    assert registry.get("other") is None


def test_tampered_weights_stop_the_server(make_settings: Any, tmp_path: Path) -> None:
    pkg = _copy_demo(tmp_path / "models" / "demo")
    weights = pkg / "private" / "weights.npz"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0x01
    weights.write_bytes(bytes(data))
    server = Server(make_settings(model_dir=tmp_path / "models"))
    with pytest.raises(ConfigError, match="failed verification"):
        asyncio.run(server.start())


def test_duplicate_ids_and_empty_dir_are_refused(tmp_path: Path) -> None:
    _copy_demo(tmp_path / "models" / "a")
    _copy_demo(tmp_path / "models" / "b")
    with pytest.raises(ConfigError, match="provided by both"):
        ModelRegistry.load(tmp_path / "models")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="no model package"):
        ModelRegistry.load(tmp_path / "empty")
    with pytest.raises(ConfigError, match="does not exist"):
        ModelRegistry.load(tmp_path / "nowhere")
