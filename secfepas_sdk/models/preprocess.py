"""Turn a detected face into the model's input tensor, as the model's manifest says.

The preprocessing contract (secfepas_sdk.models.contract) travels with the
model, and this is the one implementation of it: the camera (through
secfepas_sdk.camera.preprocess), training and fidelity all build tensors here,
so a model is trained and checked on exactly what the camera will feed it.
Crop rule (margin; the input's aspect ratio or the box as it is), resize to
height x width with the stated interpolation, colour order (RGB, BGR or GRAY),
scale by 1/255, per-channel mean/std, NCHW float32.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from secfepas_sdk._extras import require
from secfepas_sdk.errors import InvalidValueError
from secfepas_sdk.models.contract import PreprocessContract, contract_from_manifest

if TYPE_CHECKING:
    from secfepas_sdk.models.package import Manifest

__all__ = [
    "PreprocessConfig",
    "crop_box",
    "crop_face",
    "preprocess_face",
    "square_box",
    "to_tensor",
]

_COLOURS = ("RGB", "BGR", "GRAY")
_INTERPOLATIONS = ("area", "linear", "cubic", "nearest")


@dataclass(frozen=True, slots=True, kw_only=True)
class PreprocessConfig:
    """Crop and normalisation settings (mean/std in the model's channel order, after
    /255). Build it with :meth:`from_manifest`; the defaults are a 224x224 RGB crop
    without normalisation."""

    height: int = 224
    width: int = 224
    colour_order: str = "RGB"
    margin: float = 0.2
    """Added on each side, as a fraction of the box's longer side."""
    square: bool = True
    """Crop with the input's aspect ratio (never stretched), else the grown box."""
    interpolation: str = "area"
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        for name, v in (("height", self.height), ("width", self.width)):
            if not (8 <= v <= 4096):
                raise InvalidValueError(f"{name} must be in [8, 4096], got {v}")
        if self.colour_order not in _COLOURS:
            raise InvalidValueError(f"colour order must be one of {_COLOURS}")
        if self.interpolation not in _INTERPOLATIONS:
            raise InvalidValueError(f"interpolation must be one of {_INTERPOLATIONS}")
        if not (math.isfinite(self.margin) and 0.0 <= self.margin <= 2.0):
            raise InvalidValueError(f"margin must be in [0, 2], got {self.margin}")
        if (self.mean is None) != (self.std is None):
            raise InvalidValueError("give both mean and std, or neither")
        if self.mean is not None and self.std is not None:
            if len(self.mean) != self.channels or len(self.std) != self.channels:
                raise InvalidValueError(f"mean and std need {self.channels} value(s)")
            if not all(math.isfinite(v) for v in self.mean):
                raise InvalidValueError("mean must be finite")
            if not all(math.isfinite(v) and v > 0 for v in self.std):
                raise InvalidValueError("std must be finite and > 0")

    @property
    def channels(self) -> int:
        return 1 if self.colour_order == "GRAY" else 3

    @property
    def input_shape(self) -> tuple[int, int, int, int]:
        return (1, self.channels, self.height, self.width)

    @classmethod
    def from_contract(cls, contract: PreprocessContract) -> PreprocessConfig:
        return cls(
            height=contract.height,
            width=contract.width,
            colour_order=contract.colour_order,
            margin=contract.crop_margin,
            square=contract.crop_square,
            interpolation=contract.interpolation,
            mean=tuple(contract.mean),
            std=tuple(contract.std),
        )

    @classmethod
    def from_manifest(
        cls, manifest: Manifest | Mapping[str, Any], source: str = "the manifest"
    ) -> PreprocessConfig:
        """The settings a manifest states (a loaded Manifest, or a dict from a peer,
        validated here; older manifests without a contract get the RGB defaults)."""
        if isinstance(manifest, Mapping):
            return cls.from_contract(contract_from_manifest(manifest, source))
        return cls.from_contract(manifest.preprocess)


def _valid_box(box: Sequence[float]) -> tuple[float, float, float, float]:
    x1, y1, x2, y2 = (float(v) for v in box)
    if not all(math.isfinite(v) for v in (x1, y1, x2, y2)) or x2 <= x1 or y2 <= y1:
        raise InvalidValueError(f"bad box {tuple(box)}")
    return x1, y1, x2, y2


def square_box(
    box: Sequence[float], image_hw: tuple[int, int], margin: float, aspect: float = 1.0
) -> tuple[int, int, int, int]:
    """A (x1, y1, x2, y2) crop of width/height ``aspect`` (a square by default)
    covering ``box`` grown by ``margin``, moved inside the image.

    The crop keeps its size if it fits (shifted away from the border), and
    shrinks to fit the image otherwise, so it is never stretched.
    """
    h, w = image_hw
    x1, y1, x2, y2 = _valid_box(box)
    if not (math.isfinite(aspect) and 1 / 64 <= aspect <= 64):
        raise InvalidValueError(f"bad aspect ratio {aspect}")
    grow = 2.0 * margin * max(x2 - x1, y2 - y1)
    tall = max(y2 - y1 + grow, (x2 - x1 + grow) / aspect)
    ch, cw = round(tall), round(tall * aspect)
    if cw > w:
        ch, cw = round(w / aspect), w
    if ch > h:
        ch, cw = h, round(h * aspect)
    ch, cw = max(1, min(ch, h)), max(1, min(cw, w))
    cx, cy = (x1 + x2) / 2.0, (y1 + y2) / 2.0
    left = min(max(round(cx - cw / 2.0), 0), w - cw)
    top = min(max(round(cy - ch / 2.0), 0), h - ch)
    return left, top, left + cw, top + ch


def crop_box(
    pixels: NDArray[np.uint8], box: Sequence[float], config: PreprocessConfig
) -> NDArray[np.uint8]:
    """The crop the contract asks for around ``box`` (a view into ``pixels``)."""
    h, w = pixels.shape[0], pixels.shape[1]
    if config.square:
        x1, y1, x2, y2 = square_box(box, (h, w), config.margin, config.width / config.height)
    else:
        fx1, fy1, fx2, fy2 = _valid_box(box)
        grow = config.margin * max(fx2 - fx1, fy2 - fy1)
        x1, y1 = max(0, round(fx1 - grow)), max(0, round(fy1 - grow))
        x2, y2 = min(w, max(x1 + 1, round(fx2 + grow))), min(h, max(y1 + 1, round(fy2 + grow)))
        x1, y1 = min(x1, x2 - 1), min(y1, y2 - 1)
    return pixels[y1:y2, x1:x2]


def crop_face(
    pixels: NDArray[np.uint8], box: Sequence[float], *, margin: float = 0.2
) -> NDArray[np.uint8]:
    """The square BGR crop around ``box`` (a view into ``pixels``)."""
    x1, y1, x2, y2 = square_box(box, (pixels.shape[0], pixels.shape[1]), margin)
    return pixels[y1:y2, x1:x2]


def to_tensor(crop: NDArray[np.uint8], config: PreprocessConfig) -> NDArray[np.float32]:
    """A BGR crop as a (1, C, height, width) float32 tensor in the contract's colour
    order, scaled to [0, 1], then (x - mean) / std per channel."""
    cv2: Any = require("cv2", "camera")
    if crop.dtype != np.uint8 or crop.ndim != 3 or crop.shape[2] != 3 or crop.size == 0:
        raise InvalidValueError(
            f"expected a non-empty uint8 HxWx3 crop, got {crop.dtype} {crop.shape}"
        )
    th, tw = config.height, config.width
    interp = {
        "linear": cv2.INTER_LINEAR,
        "cubic": cv2.INTER_CUBIC,
        "nearest": cv2.INTER_NEAREST,
        "area": cv2.INTER_AREA if crop.shape[0] > th and crop.shape[1] > tw else cv2.INTER_LINEAR,
    }[config.interpolation]
    resized = cv2.resize(np.ascontiguousarray(crop), (tw, th), interpolation=interp)
    if config.colour_order == "RGB":
        resized = cv2.cvtColor(resized, cv2.COLOR_BGR2RGB)
    elif config.colour_order == "GRAY":
        resized = cv2.cvtColor(resized, cv2.COLOR_BGR2GRAY)[..., None]
    x = resized.astype(np.float32)
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
    return to_tensor(crop_box(pixels, box, cfg), cfg)
