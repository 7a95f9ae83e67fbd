"""Import direction (DESIGN.md): the camera never pulls in the edge or plugins."""

from __future__ import annotations

import subprocess
import sys

import pytest

from secfepas_sdk import SecfepasError
from secfepas_sdk._extras import require
from secfepas_sdk.errors import MissingExtraError


def _modules_after_import(module: str) -> set[str]:
    code = f"import sys, {module}\nprint('\\n'.join(sorted(sys.modules)))\n"
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout
    return set(out.split())


def test_camera_does_not_import_edge_or_integrations() -> None:
    loaded = _modules_after_import("secfepas_sdk.camera")
    assert not {m for m in loaded if m.startswith("secfepas_sdk.edge")}
    assert not {m for m in loaded if m.startswith(("secfepas_mqtt", "secfepas_fhir", "paho"))}


def test_edge_does_not_import_camera() -> None:
    loaded = _modules_after_import("secfepas_sdk.edge")
    assert not {m for m in loaded if m.startswith("secfepas_sdk.camera")}


def test_missing_extra_names_pip_command() -> None:
    with pytest.raises(MissingExtraError) as exc:
        require("secfepas_no_such_module_xyz", "camera")
    assert "pip install 'secfepas-sdk[camera]'" in str(exc.value)
    assert isinstance(exc.value, SecfepasError)
