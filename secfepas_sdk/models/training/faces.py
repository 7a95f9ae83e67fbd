"""Each training frame's face box, found once per run as the camera finds it.

The camera crops the most confident MTCNN face (``FaceDetector.best``) by the
model's crop rule; training must see the same crops, so every frame goes
through the same detector once, before the first epoch, and its box is kept in
memory for the run (coordinates only: no pixel is written anywhere). A frame
with no face is skipped and counted: the camera would not send it either.

The detector is passed in (anything with ``best(pixels)``), so ``models`` does
not import the camera; the CLI gives the camera's own."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from secfepas_sdk._extras import require
from secfepas_sdk.errors import ConfigError
from secfepas_sdk.models.training.unbc import Frame

__all__ = ["Box", "FaceFinder", "FrameFaces", "find_faces", "read_frame"]

Box = tuple[float, float, float, float]


class _Boxed(Protocol):
    @property
    def box(self) -> Box: ...


class FaceFinder(Protocol):
    """What training needs of a detector (the camera's MTCNN ``FaceDetector`` is one)."""

    def best(self, pixels: NDArray[np.uint8]) -> _Boxed | None: ...


@dataclass(frozen=True, slots=True)
class FrameFaces:
    """The frames with a face, each with its box; and those without one."""

    frames: list[Frame]
    boxes: dict[Frame, Box]
    no_face: list[Frame]


def read_frame(frame: Frame) -> NDArray[np.uint8]:
    cv2: Any = require("cv2", "train")
    pixels = cv2.imread(str(frame.image), cv2.IMREAD_COLOR)
    if pixels is None:
        raise ConfigError(f"cannot read the image {frame.image}")
    return np.ascontiguousarray(pixels, dtype=np.uint8)


def find_faces(
    frames: list[Frame],
    finder: FaceFinder,
    step: Callable[[str], None] = lambda _s: None,
) -> FrameFaces:
    """Run ``finder`` once on every frame; one clear error if no frame has a face."""
    boxes: dict[Frame, Box] = {}
    kept: list[Frame] = []
    missed: list[Frame] = []
    for i, frame in enumerate(frames):
        step(f"finding faces: frame {i + 1}/{len(frames)}")
        face = finder.best(read_frame(frame))
        if face is None:
            missed.append(frame)
            continue
        x1, y1, x2, y2 = (float(v) for v in face.box)
        boxes[frame] = (x1, y1, x2, y2)
        kept.append(frame)
    if not kept:
        raise ConfigError(
            f"no face found in any of the {len(frames)} frames (first {frames[0].image}): "
            "training crops faces as the camera does"
        )
    return FrameFaces(kept, boxes, missed)
