"""Frame selection: a chain of selectors that decides which frames get analysed.

Step 1 (:class:`PeriodicSelector`) lets one frame through every ``period_s`` of
capture time. Step 2 (:class:`RedundancySelector`) drops a candidate whose
reduced "DC image" (Yeo and Liu, 1995: the 8x8 block means of the grey image)
barely differs from the last frame that was actually analysed. Selectors are
pure functions of frames and their own state; they never look at the clock.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from secfepas_sdk._extras import require
from secfepas_sdk.camera.frames import Frame
from secfepas_sdk.errors import InvalidValueError

__all__ = [
    "DEFAULT_PERIOD_S",
    "DEFAULT_REDUNDANCY_THRESHOLD",
    "PeriodicSelector",
    "RedundancySelector",
    "SelectionStats",
    "Selector",
    "SelectorChain",
    "dc_difference",
    "dc_image",
    "default_chain",
]

DEFAULT_PERIOD_S = 5.0
# Mean absolute difference of DC images, in grey levels (0-255). Calibrated on
# the bundled clip and on synthetic sensor noise: see docs/camera.md.
DEFAULT_REDUNDANCY_THRESHOLD = 0.8
BLOCK = 8


class Selector(Protocol):
    """One step of a chain."""

    name: str

    def offer(self, frame: Frame) -> bool:
        """True if ``frame`` may go on; a step may update its own state here."""
        ...

    def analysed(self, frame: Frame) -> None:
        """The chain selected ``frame``: it is now the last analysed frame."""
        ...

    def reset(self) -> None: ...


class PeriodicSelector:
    """One frame per ``period_s`` of capture time, starting with the first frame.

    Slots are aligned to the first frame's timestamp: a frame passes when it
    is the first one at or after ``t0 + k * period_s`` for a slot ``k`` not yet
    used. A clock that jumps back by more than a period (a stream restarted)
    restarts the schedule.
    """

    name = "periodic"

    def __init__(self, period_s: float = DEFAULT_PERIOD_S) -> None:
        if not (math.isfinite(period_s) and period_s >= 0.0):
            raise InvalidValueError(f"period_s must be >= 0, got {period_s!r}")
        self.period_s = period_s
        self._t0: float | None = None
        self._next_slot = 0
        self._last_t = -math.inf

    def reset(self) -> None:
        self._t0 = None
        self._next_slot = 0
        self._last_t = -math.inf

    def offer(self, frame: Frame) -> bool:
        t = frame.timestamp
        if self._t0 is None or t < self._last_t - max(self.period_s, 1e-9):
            self._t0, self._next_slot, self._last_t = t, 1, t
            return True
        self._last_t = max(self._last_t, t)
        if self.period_s == 0.0:
            return True
        # Tolerance for timestamps like 0.1 * 50 that land a hair under the slot.
        slot = math.floor((t - self._t0) / self.period_s + 1e-9)
        if slot >= self._next_slot:
            self._next_slot = slot + 1
            return True
        return False

    def analysed(self, frame: Frame) -> None:
        del frame


def dc_image(pixels: NDArray[np.uint8]) -> NDArray[np.float32]:
    """The 8x8 block means of the grey image (rows/columns past a full block are ignored)."""
    cv2: Any = require("cv2", "camera")
    h, w = pixels.shape[0] // BLOCK, pixels.shape[1] // BLOCK
    if h == 0 or w == 0:
        raise InvalidValueError(
            f"image {pixels.shape[:2]} is smaller than one {BLOCK}x{BLOCK} block"
        )
    grey = cv2.cvtColor(pixels[: h * BLOCK, : w * BLOCK], cv2.COLOR_BGR2GRAY)
    # INTER_AREA with an exact integer factor is the block mean.
    dc = cv2.resize(grey.astype(np.float32), (w, h), interpolation=cv2.INTER_AREA)
    return np.asarray(dc, dtype=np.float32)


def dc_difference(a: NDArray[np.float32], b: NDArray[np.float32]) -> float:
    """Mean absolute difference of two DC images, in grey levels; inf if shapes differ."""
    if a.shape != b.shape:
        return math.inf
    return float(np.mean(np.abs(a - b)))


class RedundancySelector:
    """Drop a candidate whose DC image is within ``threshold`` of the last analysed one."""

    name = "redundant"

    def __init__(self, threshold: float = DEFAULT_REDUNDANCY_THRESHOLD) -> None:
        if not (math.isfinite(threshold) and threshold >= 0.0):
            raise InvalidValueError(f"threshold must be >= 0, got {threshold!r}")
        self.threshold = threshold
        self._reference: NDArray[np.float32] | None = None
        self._candidate: tuple[Frame, NDArray[np.float32]] | None = None
        self.last_difference = math.inf
        """The metric for the last offered frame (inf with no reference)."""

    def reset(self) -> None:
        self._reference = None
        self._candidate = None
        self.last_difference = math.inf

    def offer(self, frame: Frame) -> bool:
        dc = dc_image(frame.pixels)
        self._candidate = (frame, dc)
        if self._reference is None:
            self.last_difference = math.inf
            return True
        self.last_difference = dc_difference(dc, self._reference)
        return self.last_difference >= self.threshold

    def analysed(self, frame: Frame) -> None:
        cand = self._candidate
        self._reference = cand[1] if cand and cand[0] is frame else dc_image(frame.pixels)
        self._candidate = None


@dataclass(frozen=True, slots=True, kw_only=True)
class SelectionStats:
    """Frames seen, selected, and dropped by each step (by step name)."""

    seen: int
    selected: int
    dropped: Mapping[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.seen < 0 or self.selected < 0 or any(v < 0 for v in self.dropped.values()):
            raise InvalidValueError("counters must be >= 0")
        if self.selected + sum(self.dropped.values()) != self.seen:
            raise InvalidValueError("seen must equal selected plus all drops")

    def dropped_by(self, name: str) -> int:
        return int(self.dropped.get(name, 0))


class SelectorChain:
    """Run steps in order; the first step that says no drops the frame.

    When every step says yes the frame is selected, and every step is told
    (``analysed``) so that redundancy compares with what was really analysed.
    """

    def __init__(self, steps: Sequence[Selector]) -> None:
        names = [s.name for s in steps]
        if len(set(names)) != len(names):
            raise InvalidValueError(f"step names must be unique, got {names}")
        self.steps = tuple(steps)
        self._seen = 0
        self._selected = 0
        self._dropped = dict.fromkeys(names, 0)

    def select(self, frame: Frame) -> bool:
        self._seen += 1
        for step in self.steps:
            if not step.offer(frame):
                self._dropped[step.name] += 1
                return False
        self._selected += 1
        for step in self.steps:
            step.analysed(frame)
        return True

    def filter(self, frames: Iterable[Frame]) -> Iterator[Frame]:
        """Yield the selected frames of ``frames``."""
        for frame in frames:
            if self.select(frame):
                yield frame

    def reset(self) -> None:
        for step in self.steps:
            step.reset()
        self._seen = self._selected = 0
        self._dropped = dict.fromkeys(self._dropped, 0)

    @property
    def stats(self) -> SelectionStats:
        return SelectionStats(seen=self._seen, selected=self._selected, dropped=dict(self._dropped))


def default_chain(
    period_s: float = DEFAULT_PERIOD_S, threshold: float = DEFAULT_REDUNDANCY_THRESHOLD
) -> SelectorChain:
    """Periodic, then temporal redundancy: the chain the camera pipeline uses."""
    return SelectorChain([PeriodicSelector(period_s), RedundancySelector(threshold)])
