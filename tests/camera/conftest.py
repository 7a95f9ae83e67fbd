"""Real media for the camera tests (scikit-image stills, the bundled clip) and the PKI
for the tests against a real edge; plain helpers live in
testkit.camera."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
from numpy.typing import NDArray
from skimage import data

from secfepas_sdk.camera.detection import FaceDetector
from secfepas_sdk.certs import Pki, init_pki
from secfepas_sdk.models.bundled import sample_video_path
from secfepas_sdk.protocol.transport import TlsFiles


@pytest.fixture(scope="session")
def astronaut_bgr() -> NDArray[np.uint8]:
    return np.ascontiguousarray(cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR))


@pytest.fixture(scope="session")
def coffee_bgr() -> NDArray[np.uint8]:
    return np.ascontiguousarray(cv2.cvtColor(data.coffee(), cv2.COLOR_RGB2BGR))


@pytest.fixture(scope="session")
def detector() -> FaceDetector:
    return FaceDetector()


@pytest.fixture(scope="session")
def sample_clip() -> Path:
    return sample_video_path()


VideoWriter = Callable[..., Path]


def _write_video(path: Path, frames: list[NDArray[np.uint8]], fps: float = 10.0) -> Path:
    """Write BGR frames as MJPG (every frame a key frame, easy to corrupt one)."""
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), fps, (w, h))
    assert writer.isOpened()
    for f in frames:
        writer.write(f)
    writer.release()
    return path


@pytest.fixture(scope="session")
def write_video() -> VideoWriter:
    return _write_video


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return init_pki(tmp_path_factory.mktemp("pki") / "site")


@pytest.fixture(scope="module")
def tls(pki: Pki) -> TlsFiles:
    cam = pki.camera("camera-1")
    return TlsFiles(ca=pki.ca_cert, cert=cam.cert, key=cam.key)
