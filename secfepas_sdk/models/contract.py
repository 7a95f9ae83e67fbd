"""The preprocessing contract: what a camera must do to a face before it is shared.

It travels in the model's public manifest, so the camera builds the model's
input from the model itself, never from constants: channels (1 or 3), colour
order, input size, per-channel mean and std (applied after scaling pixels to
[0, 1]), the crop rule and the interpolation. Public, like the architecture.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from secfepas_sdk.errors import ModelPackageError

__all__ = [
    "COLOUR_ORDERS",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "INTERPOLATIONS",
    "PreprocessContract",
    "contract_from_manifest",
    "default_contract",
]

ColourOrder = Literal["RGB", "BGR", "GRAY"]
Interpolation = Literal["area", "linear", "cubic", "nearest"]
COLOUR_ORDERS: tuple[str, ...] = ("RGB", "BGR", "GRAY")
INTERPOLATIONS: tuple[str, ...] = ("area", "linear", "cubic", "nearest")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DEFAULT_MARGIN = 0.2


class PreprocessContract(BaseModel):
    """One model's input contract (validated wherever it is read)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    channels: Literal[1, 3]
    colour_order: ColourOrder
    height: int = Field(ge=8, le=4096)
    width: int = Field(ge=8, le=4096)
    mean: tuple[float, ...]
    """Per channel, in the model's channel order, on pixels scaled to [0, 1]."""
    std: tuple[float, ...]
    crop_margin: float = Field(default=DEFAULT_MARGIN, ge=0.0, le=2.0)
    """Added on each side of the face box, as a fraction of the box's longer side."""
    crop_square: bool = True
    """True: the crop has the input's aspect ratio (never stretched); False: the
    grown face box itself, stretched to the input size."""
    interpolation: Interpolation = "area"
    """'area' shrinks with pixel-area averaging and enlarges bilinearly."""

    @model_validator(mode="after")
    def _consistent(self) -> PreprocessContract:
        if len(self.mean) != self.channels or len(self.std) != self.channels:
            raise ValueError(
                f"mean and std need {self.channels} value(s), one per channel; "
                f"got {len(self.mean)} and {len(self.std)}"
            )
        if (self.channels == 1) != (self.colour_order == "GRAY"):
            raise ValueError(
                f"colour order {self.colour_order} does not fit {self.channels} channel(s)"
            )
        if not all(math.isfinite(v) for v in self.mean):
            raise ValueError("mean must be finite")
        if not all(math.isfinite(v) and v > 0 for v in self.std):
            raise ValueError("std must be finite and > 0")
        return self

    @property
    def input_shape(self) -> tuple[int, int, int, int]:
        return (1, self.channels, self.height, self.width)


def default_contract(
    input_shape: Sequence[int],
    *,
    colour_order: str | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    crop_margin: float = DEFAULT_MARGIN,
    crop_square: bool = True,
    interpolation: str = "area",
    source: str = "the model",
) -> PreprocessContract:
    """The contract for an NCHW ``input_shape``, every unset field defaulted from it:
    3 channels -> RGB with ImageNet mean/std, 1 channel -> GRAY in [0, 1]."""
    if len(input_shape) != 4:
        raise ModelPackageError(f"{source}: the input must be NCHW, got {len(input_shape)} dims")
    channels = int(input_shape[1])
    if channels not in (1, 3):
        raise ModelPackageError(f"{source}: the input has {channels} channels; need 1 or 3")
    order = (colour_order or ("GRAY" if channels == 1 else "RGB")).upper()
    if order not in COLOUR_ORDERS:
        raise ModelPackageError(
            f"{source}: unknown colour order {colour_order!r} (one of {', '.join(COLOUR_ORDERS)})"
        )
    if interpolation not in INTERPOLATIONS:
        raise ModelPackageError(
            f"{source}: unknown interpolation {interpolation!r} "
            f"(one of {', '.join(INTERPOLATIONS)})"
        )
    base_mean, base_std = (IMAGENET_MEAN, IMAGENET_STD) if channels == 3 else ((0.0,), (1.0,))
    return build_contract(
        {
            "channels": channels,
            "colour_order": order,
            "height": int(input_shape[2]),
            "width": int(input_shape[3]),
            "mean": tuple(base_mean if mean is None else mean),
            "std": tuple(base_std if std is None else std),
            "crop_margin": crop_margin,
            "crop_square": crop_square,
            "interpolation": interpolation,
        },
        source,
    )


def build_contract(fields: Mapping[str, Any], source: str) -> PreprocessContract:
    try:
        return PreprocessContract.model_validate(dict(fields))
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'contract'}: {e['msg']}" for e in exc.errors()
        )
        raise ModelPackageError(f"{source}: bad preprocessing contract: {problems}") from exc


def contract_from_manifest(manifest: Mapping[str, Any], source: str) -> PreprocessContract:
    """The contract of a manifest (a dict, e.g. from a peer), in either format:
    ``preprocess`` (format 2) or the older top-level ``input_shape``/``mean``/``std``
    (format 1: RGB, square crop with 0.2 margin, area interpolation)."""
    given = manifest.get("preprocess")
    if given is not None:
        if not isinstance(given, Mapping):
            raise ModelPackageError(f"{source}: preprocess must be an object")
        return build_contract(given, source)
    shape = manifest.get("input_shape")
    if not isinstance(shape, list | tuple) or len(shape) != 4:
        raise ModelPackageError(f"{source}: no preprocess contract and no NCHW input_shape")
    return build_contract(
        {
            "channels": shape[1],
            "colour_order": "RGB",
            "height": shape[2],
            "width": shape[3],
            "mean": manifest.get("mean"),
            "std": manifest.get("std"),
        },
        source,
    )
