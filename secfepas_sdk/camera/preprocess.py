"""Turn a detected face into the model's input tensor.

Square crop with a margin (kept inside the image), resize, BGR to RGB, scale
by 1/255, optional per-channel mean/std from the model manifest, NCHW float32.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from secfepas_sdk._extras import require
from secfepas_sdk.errors import InvalidValueError

__all__ = ["PreprocessConfig", "crop_face", "preprocess_face", "square_box", "to_tensor"]


@dataclass(frozen=True, slots=True, kw_only=True)
class PreprocessConfig:
    """Crop and normalisation settings (mean/std in RGB order, after /255)."""

    size: int = 224
    margin: float = 0.2
    """Added on each side, as a fraction of the box's longer side."""
    mean: tuple[float, float, float] | None = None
    std: tuple[float, float, float] | None = None

    def __post_init__(self) -> None:
        if not (8 <= self.size <= 4096):
            raise InvalidValueError(f"size must be in [8, 4096], got {self.size}")
        if not (math.isfinite(self.margin) and 0.0 <= self.margin <= 2.0):
            raise InvalidValueError(f"margin must be in [0, 2], got {self.margin}")
        if (self.mean is None) != (self.std is None):
            raise InvalidValueError("give both mean and std, or neither")
        if self.mean is not None and self.std is not None:
            if len(self.mean) != 3 or len(self.std) != 3:
                raise InvalidValueError("mean and std need three values (R, G, B)")
            if not all(math.isfinite(v) for v in self.mean):
                raise InvalidValueError("mean must be finite")
            if not all(math.isfinite(v) and v > 0 for v in self.std):
                raise InvalidValueError("std must be finite and > 0")

    @classmethod
    def from_manifest(
        cls, *, input_shape: Sequence[int], mean: Sequence[float], std: Sequence[float]
    ) -> PreprocessConfig:
        """Settings for a model whose manifest gives NCHW ``input_shape``, mean and std."""
        if len(input_shape) != 4 or input_shape[1] != 3 or input_shape[2] != input_shape[3]:
            raise InvalidValueError(
                f"expected a square NCHW RGB input shape, got {list(input_shape)}"
            )
        m, s = tuple(float(v) for v in mean), tuple(float(v) for v in std)
        if len(m) != 3 or len(s) != 3:
            raise InvalidValueError("mean and std need three values (R, G, B)")
        return cls(size=int(input_shape[2]), mean=(m[0], m[1], m[2]), std=(s[0], s[1], s[2]))


def square_box(
    box: Sequence[float], image_hw: tuple[int, int], margin: float
) -> tuple[int, int, int, int]:
    """A square (x1, y1, x2, y2) around ``box`` grown by ``margin``, moved inside the image.

    The square keeps its side if it fits (shifted away from the border), and
    shrinks to the image's shorter side otherwise, so the crop is never
    stretched.
    """
    h, w = image_hw
    x1, y1, x2, y2 = (float(v) for v in box)
    if not all(math.isfinite(v) for v in (x1, y1, x2, y2)) or x2 <= x1 or y2 <= y1:
        raise InvalidValueError(f"bad box {tuple(box)}")
    side = max(x2 - x1, y2 - y1) * (1.0 + 2.0 * margin)
    side_px = max(1, min(round(side), w, h))
    cx, cy = (x1 + x2) / 2.0, (y1 + y2) / 2.0
    left = min(max(round(cx - side_px / 2.0), 0), w - side_px)
    top = min(max(round(cy - side_px / 2.0), 0), h - side_px)
    return left, top, left + side_px, top + side_px


def crop_face(
    pixels: NDArray[np.uint8], box: Sequence[float], *, margin: float = 0.2
) -> NDArray[np.uint8]:
    """The square BGR crop around ``box`` (a view into ``pixels``)."""
    x1, y1, x2, y2 = square_box(box, (pixels.shape[0], pixels.shape[1]), margin)
    return pixels[y1:y2, x1:x2]


def to_tensor(crop: NDArray[np.uint8], config: PreprocessConfig) -> NDArray[np.float32]:
    """A BGR crop as a (1, 3, size, size) float32 RGB tensor in [0, 1] (then mean/std)."""
    cv2: Any = require("cv2", "camera")
    if crop.dtype != np.uint8 or crop.ndim != 3 or crop.shape[2] != 3 or crop.size == 0:
        raise InvalidValueError(
            f"expected a non-empty uint8 HxWx3 crop, got {crop.dtype} {crop.shape}"
        )
    n = config.size
    interp = cv2.INTER_AREA if min(crop.shape[:2]) > n else cv2.INTER_LINEAR
    resized = cv2.resize(np.ascontiguousarray(crop), (n, n), interpolation=interp)
    rgb = cv2.cvtColor(resized, cv2.COLOR_BGR2RGB)
    x = rgb.astype(np.float32)
    x *= np.float32(1.0 / 255.0)
    if config.mean is not None and config.std is not None:
        x -= np.asarray(config.mean, np.float32)
        x /= np.asarray(config.std, np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None])


def preprocess_face(
    pixels: NDArray[np.uint8], box: Sequence[float], config: PreprocessConfig | None = None
) -> NDArray[np.float32]:
    """Crop, resize and normalise one face of a BGR frame into the model's NCHW input."""
    cfg = config or PreprocessConfig()
    return to_tensor(crop_face(pixels, box, margin=cfg.margin), cfg)
