"""Import direction (DESIGN.md): the camera never pulls in the edge or plugins."""

from __future__ import annotations

import subprocess
import sys

import pytest

from secfepas_sdk import SecfepasError
from secfepas_sdk._extras import require
from secfepas_sdk.errors import MissingExtraError


def _modules_after_import(package: str) -> set[str]:
    """Every module loaded after importing ``package`` and all its submodules
    (the package ``__init__`` alone is lazy and would prove nothing)."""
    code = (
        "import importlib, pkgutil, sys\n"
        f"pkg = importlib.import_module({package!r})\n"
        "for info in pkgutil.iter_modules(pkg.__path__, pkg.__name__ + '.'):\n"
        "    importlib.import_module(info.name)\n"
        "print('\\n'.join(sorted(sys.modules)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout
    return set(out.split())


def test_camera_does_not_import_edge_or_integrations() -> None:
    loaded = _modules_after_import("secfepas_sdk.camera")
    assert "secfepas_sdk.camera.pipeline" in loaded and "secfepas_sdk.camera.client" in loaded
    assert not {m for m in loaded if m.startswith("secfepas_sdk.edge")}
    assert not {m for m in loaded if m.startswith(("secfepas_mqtt", "secfepas_fhir", "paho"))}


def test_edge_does_not_import_camera() -> None:
    loaded = _modules_after_import("secfepas_sdk.edge")
    assert "secfepas_sdk.edge.server" in loaded and "secfepas_sdk.edge.worker" in loaded
    assert not {m for m in loaded if m.startswith("secfepas_sdk.camera")}


def test_missing_extra_names_pip_command() -> None:
    with pytest.raises(MissingExtraError) as exc:
        require("secfepas_no_such_module_xyz", "camera")
    assert "pip install '.[camera]'" in str(exc.value)
    assert "secfepas_sdk-*.whl[camera]" in str(exc.value)
    assert isinstance(exc.value, SecfepasError)
