"""The result of one secure inference, as the camera sees it.

Only the camera ever holds this: the edge never learns the level.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from secfepas_sdk.errors import InvalidValueError

EARLIEST_FRAME_TIME = 946_684_800.0
"""2000-01-01T00:00:00Z: an earlier ``frame_time`` is a media or monotonic time by mistake."""

PAIN_LEVELS: tuple[str, ...] = ("none", "little", "moderate", "extreme")
"""PSPI classes: 0 none, 1 little, 2 moderate, 3 extreme (PSPI >= 3)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PainAssessment:
    """One analysed frame's pain level with its provenance and cost.

    ``frame_time`` is when the frame was captured, in UTC POSIX seconds (a
    frame's ``wall_time``, never its media time): alerts carry it to receivers.
    """

    level: int
    probabilities: tuple[float, ...]
    frame_time: float
    frame_index: int = 0
    camera_id: str = "camera"
    model_id: str = ""
    model_version: str = ""
    seconds: float = 0.0
    bytes_sent: int = 0
    bytes_received: int = 0
    extra: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not 0 <= self.level < len(PAIN_LEVELS):
            raise InvalidValueError(
                f"pain level must be 0..{len(PAIN_LEVELS) - 1}, got {self.level}"
            )
        if len(self.probabilities) != len(PAIN_LEVELS):
            raise InvalidValueError(
                f"expected {len(PAIN_LEVELS)} probabilities, got {len(self.probabilities)}"
            )
        if not all(math.isfinite(p) and 0.0 <= p <= 1.0 for p in self.probabilities):
            raise InvalidValueError("probabilities must be finite and within [0, 1]")
        if not (math.isfinite(self.frame_time) and self.frame_time >= EARLIEST_FRAME_TIME):
            raise InvalidValueError(
                "frame_time must be the capture time in UTC POSIX seconds (Frame.wall_time, "
                f"time.time()), not a media or monotonic time; got {self.frame_time!r}"
            )

    @property
    def label(self) -> str:
        return PAIN_LEVELS[self.level]

    @property
    def total_bytes(self) -> int:
        return self.bytes_sent + self.bytes_received
