"""The camera's preprocessing: crop, resize and normalise a detected face into the
model's input, as the model's manifest says.

The implementation is secfepas_sdk.models.preprocess, the one carrying out of
the preprocessing contract: training and fidelity (in ``models``, which may not
import the camera) use the same code, so a model is trained and checked on what
the camera feeds it. This module is the camera's name for it."""

from __future__ import annotations

from secfepas_sdk.models.preprocess import (
    PreprocessConfig,
    crop_box,
    crop_face,
    preprocess_face,
    square_box,
    to_tensor,
)

__all__ = [
    "PreprocessConfig",
    "crop_box",
    "crop_face",
    "preprocess_face",
    "square_box",
    "to_tensor",
]
