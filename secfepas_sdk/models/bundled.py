"""Paths of the files shipped inside the package (no I/O at import time)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from secfepas_sdk.errors import ModelPackageError

DATA_DIR = Path(__file__).resolve().parent / "data"


@dataclass(frozen=True, slots=True, kw_only=True)
class MtcnnPaths:
    """The three MTCNN stages as ONNX files."""

    pnet: Path
    rnet: Path
    onet: Path


def _existing(path: Path) -> Path:
    if not path.is_file():
        raise ModelPackageError(f"bundled file is missing from the installation: {path}")
    return path


def mtcnn_paths() -> MtcnnPaths:
    """The bundled MTCNN ONNX files (MIT, exported from facenet-pytorch 2.6.0)."""
    base = DATA_DIR / "mtcnn"
    return MtcnnPaths(
        pnet=_existing(base / "pnet.onnx"),
        rnet=_existing(base / "rnet.onnx"),
        onet=_existing(base / "onet.onnx"),
    )


def sample_video_path() -> Path:
    """The bundled demo clip (public-domain stills; see docs/camera.md)."""
    return _existing(DATA_DIR / "sample" / "demo_clip.mp4")


def demo_model_path() -> Path:
    """The bundled demo model package (seeded random weights, NOT clinically
    trained: it demonstrates the secure pipeline only; see docs/models.md)."""
    path = DATA_DIR / "demo"
    _existing(path / "manifest.json")
    return path


def demo_model_dir(root: Path) -> Path:
    """Create ``root`` as an edge ``model_dir`` holding only a link to the demo package
    (the demo and tests serve it without copying the weights)."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    (root / "demo").symlink_to(demo_model_path(), target_is_directory=True)
    return root
