"""The `Frame` value type and the one place that normalises pixel layouts.

A frame owns its pixels: they are made read-only when the frame is built, so a
selector or detector can keep a reference without a copy and nobody can change
what was analysed behind its back.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from secfepas_sdk._extras import require
from secfepas_sdk.errors import InvalidValueError, SourceError

__all__ = ["EARLIEST_WALL_TIME", "Frame", "as_bgr"]

Pixels = NDArray[np.uint8]

EARLIEST_WALL_TIME = 946_684_800.0
"""2000-01-01T00:00:00Z: a wall time before this is a media or monotonic time by mistake."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Frame:
    """One captured image: uint8 BGR, HxWx3, C-contiguous, read-only.

    A frame has two clocks, as PyAV's ``pts``/``time_base`` sit beside the
    time a packet arrived: ``timestamp`` is the media time, which orders frames
    and drives selection and pacing; ``wall_time`` is when we captured it,
    which is what alerts, nurses and the EHR see.
    """

    pixels: Pixels
    timestamp: float
    """Media time in seconds: the position in a file, or seconds since open for live sources."""
    index: int
    """Position in the source's stream; gaps mean frames were dropped or skipped."""
    source_id: str
    wall_time: float = field(default_factory=time.time)
    """UTC POSIX seconds when the frame was captured (decoded, for files); default: now."""

    def __post_init__(self) -> None:
        px = self.pixels
        if not isinstance(px, np.ndarray) or px.dtype != np.uint8:
            raise InvalidValueError("Frame.pixels must be a uint8 numpy array")
        if px.ndim != 3 or px.shape[2] != 3 or px.shape[0] < 1 or px.shape[1] < 1:
            raise InvalidValueError(f"Frame.pixels must be HxWx3 BGR, got shape {px.shape}")
        if not px.flags.c_contiguous:
            raise InvalidValueError("Frame.pixels must be C-contiguous")
        if not math.isfinite(self.timestamp):
            raise InvalidValueError(f"Frame.timestamp must be finite, got {self.timestamp!r}")
        if not (math.isfinite(self.wall_time) and self.wall_time >= EARLIEST_WALL_TIME):
            raise InvalidValueError(
                f"Frame.wall_time must be UTC POSIX seconds (time.time()), got {self.wall_time!r}"
            )
        if self.index < 0:
            raise InvalidValueError(f"Frame.index must be >= 0, got {self.index}")
        if not self.source_id:
            raise InvalidValueError("Frame.source_id must not be empty")
        px.flags.writeable = False

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])


def as_bgr(pixels: object, *, source_id: str, assume: str = "bgr") -> Pixels:
    """Return a C-contiguous uint8 HxWx3 BGR array, converting grey and 4-channel input.

    Grey (HxW or HxWx1) is replicated, BGRA drops alpha (``assume="rgb"`` treats
    3/4-channel input as RGB/RGBA). Anything else is refused with a
    :class:`SourceError` naming the source. May return ``pixels`` itself.
    """
    cv2 = require("cv2", "camera")
    if not isinstance(pixels, np.ndarray):
        raise SourceError(f"{source_id}: frame is not a numpy array ({type(pixels).__name__})")
    if pixels.dtype != np.uint8:
        raise SourceError(f"{source_id}: frame dtype {pixels.dtype} is not uint8")
    if assume not in ("bgr", "rgb"):
        raise InvalidValueError(f"assume must be 'bgr' or 'rgb', got {assume!r}")
    if pixels.ndim == 3 and pixels.shape[2] == 1:
        pixels = pixels[:, :, 0]
    if pixels.ndim not in (2, 3) or pixels.shape[0] < 1 or pixels.shape[1] < 1:
        raise SourceError(f"{source_id}: frame shape {pixels.shape} is not an image")
    src = np.ascontiguousarray(pixels)
    if src.ndim == 2:
        return np.ascontiguousarray(cv2.cvtColor(src, cv2.COLOR_GRAY2BGR))
    channels = src.shape[2]
    if channels == 3:
        return src if assume == "bgr" else np.ascontiguousarray(src[:, :, ::-1])
    if channels == 4:
        code = cv2.COLOR_BGRA2BGR if assume == "bgr" else cv2.COLOR_RGBA2BGR
        return np.ascontiguousarray(cv2.cvtColor(src, code))
    raise SourceError(f"{source_id}: frame has {channels} channels; expected 1, 3 or 4")
