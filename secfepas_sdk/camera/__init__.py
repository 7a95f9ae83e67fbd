"""Camera side: frame sources, selection, face detection, preprocessing,
secure inference client and the pipeline that ties them to alerts.

What a firmware author needs is exported here, loaded lazily so that
``import secfepas_sdk.camera`` costs nothing (numpy, OpenCV and ONNX Runtime
load on first use)::

    from secfepas_sdk.camera import SecureInferenceClient, TlsFiles, open_source

Importing this package must never pull in ``secfepas_sdk.edge`` or any
integration plugin (a test checks it in a subprocess).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from secfepas_sdk.camera.client import SecureInferenceClient
    from secfepas_sdk.camera.detection import FaceDetector
    from secfepas_sdk.camera.pipeline import CameraPipeline, PipelineConfig
    from secfepas_sdk.camera.selection import default_chain
    from secfepas_sdk.camera.sources import PushSource, open_source
    from secfepas_sdk.protocol.transport import TlsFiles

__all__ = [
    "CameraPipeline",
    "FaceDetector",
    "PipelineConfig",
    "PushSource",
    "SecureInferenceClient",
    "TlsFiles",
    "default_chain",
    "open_source",
]

_HOME = {
    "CameraPipeline": "secfepas_sdk.camera.pipeline",
    "FaceDetector": "secfepas_sdk.camera.detection",
    "PipelineConfig": "secfepas_sdk.camera.pipeline",
    "PushSource": "secfepas_sdk.camera.sources",
    "SecureInferenceClient": "secfepas_sdk.camera.client",
    "TlsFiles": "secfepas_sdk.protocol.transport",
    "default_chain": "secfepas_sdk.camera.selection",
    "open_source": "secfepas_sdk.camera.sources",
}


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value  # later look-ups skip this hook
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
