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


def _modules_after(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", code + "\nimport sys\nprint('\\n'.join(sorted(sys.modules)))"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return set(out.split())


def test_importing_the_camera_package_is_light() -> None:
    """Firmware imports the package first: no numpy, OpenCV, ONNX Runtime, SEAL or pydantic yet."""
    loaded = _modules_after("import secfepas_sdk.camera")
    heavy = {"numpy", "cv2", "onnxruntime", "tenseal", "pydantic", "secfepas_sdk.snni"}
    assert not {m for m in loaded if m.split(".")[0] in heavy or m.startswith(tuple(heavy))}
    assert not {m for m in loaded if m.startswith("secfepas_sdk.camera.")}


def test_the_camera_package_exports_what_firmware_needs() -> None:
    import secfepas_sdk.camera as camera
    from secfepas_sdk.camera.client import SecureInferenceClient
    from secfepas_sdk.camera.sources import PushSource, open_source
    from secfepas_sdk.protocol.transport import TlsFiles

    wanted = {"open_source", "PushSource", "default_chain", "FaceDetector"}
    wanted |= {"SecureInferenceClient", "CameraPipeline", "TlsFiles"}
    assert wanted <= set(camera.__all__)
    for name in camera.__all__:
        assert getattr(camera, name) is not None
    assert camera.SecureInferenceClient is SecureInferenceClient
    assert (camera.open_source, camera.PushSource) == (open_source, PushSource)
    assert camera.TlsFiles is TlsFiles
    with pytest.raises(AttributeError):
        camera.NoSuchThing  # noqa: B018


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
