"""Shared pytest configuration: print backend versions in the report header."""

from __future__ import annotations

import importlib
import platform


def _version(module: str) -> str:
    try:
        mod = importlib.import_module(module)
    except ImportError:
        return "absent"
    return str(getattr(mod, "__version__", "present"))


def pytest_report_header() -> list[str]:
    names = ["numpy", "tenseal", "onnxruntime", "cv2", "cryptography", "nacl", "pydantic"]
    versions = ", ".join(f"{name} {_version(name)}" for name in names)
    return [f"secfepas backends ({platform.machine()}): {versions}"]
