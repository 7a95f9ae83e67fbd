"""When inferences happen: the schedule decides what the edge can see of the video.

The edge is a semi-honest party that sees every inference start, its messages and
their sizes. If inferences happened only when a new face was found (the
``on-change`` schedule), the edge would learn from *when* they happen whether a
patient is in the room, asleep or moving, and when visitors come.

The ``constant`` schedule (the default) removes that channel: exactly one
inference starts at every slot boundary ``t0 + k * period`` of a monotonic clock,
whatever the video holds. A slot with no new face runs the same inference on a
fixed dummy tensor and throws the result away. The slot times never depend on
detection or inference time: the tensor for a slot is ready before the slot
starts, and a slot missed because the previous inference was still running is
counted, never made up, so a slow inference cannot shift later slots.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Sequence
from typing import Literal, Protocol

import numpy as np
from numpy.typing import NDArray

from secfepas_sdk.errors import InvalidValueError

__all__ = [
    "DEFAULT_SCHEDULE",
    "SCHEDULES",
    "MonotonicClock",
    "ReplayClock",
    "ScheduleKind",
    "SlotClock",
    "SlotSchedule",
    "dummy_tensor",
]

ScheduleKind = Literal["constant", "on-change"]
SCHEDULES: tuple[ScheduleKind, ...] = ("constant", "on-change")
DEFAULT_SCHEDULE: ScheduleKind = "constant"


class SlotClock(Protocol):
    """The time source of the constant schedule.

    ``admit`` and ``source_ended`` let a replay clock tie slots to a recording's
    media time; a live clock ignores them.
    """

    def now(self) -> float: ...

    async def sleep_until(self, deadline: float) -> None: ...

    async def admit(self, media_time: float) -> None:
        """Called before the camera prepares a frame of ``media_time``."""
        ...

    async def source_ended(self) -> None: ...


class MonotonicClock:
    """Live time: ``time.monotonic``, so wall-clock steps (NTP, DST) never move a slot."""

    def now(self) -> float:
        return time.monotonic()

    async def sleep_until(self, deadline: float) -> None:
        delay = deadline - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)

    async def admit(self, media_time: float) -> None:
        return None

    async def source_ended(self) -> None:
        return None


class ReplayClock:
    """Virtual time that follows a recording's media time, for deterministic replays
    and tests. Slot ``D`` arrives once every frame with media time below ``D`` has
    been prepared, and no frame at or after ``D`` is prepared before slot ``D``
    started. Inferences take no virtual time, so no slot is ever missed.

    Not for a live camera: the edge would see inferences back to back, at the
    speed they run, not at a fixed rate.
    """

    def __init__(self, start: float = 0.0) -> None:
        self._now = start
        self._target = -math.inf  # the slot the schedule waits for
        self._waiting: float | None = None  # media time of the frame held at admit()
        self._ended = False
        self._cond: asyncio.Condition | None = None

    def _condition(self) -> asyncio.Condition:
        if self._cond is None:
            self._cond = asyncio.Condition()
        return self._cond

    def now(self) -> float:
        return self._now

    async def sleep_until(self, deadline: float) -> None:
        cond = self._condition()
        async with cond:
            self._target = deadline
            cond.notify_all()
            await cond.wait_for(
                lambda: self._ended or (self._waiting is not None and self._waiting >= deadline)
            )
            self._now = max(self._now, deadline)

    async def admit(self, media_time: float) -> None:
        cond = self._condition()
        async with cond:
            self._waiting = media_time
            cond.notify_all()
            await cond.wait_for(lambda: media_time < self._target)
            self._waiting = None

    async def source_ended(self) -> None:
        cond = self._condition()
        async with cond:
            self._ended = True
            cond.notify_all()


class SlotSchedule:
    """Slot boundaries ``t0 + k * period_s``; the slot logic, with no I/O.

    ``start()`` fixes ``t0`` (the first slot starts at once). After each
    inference, ``advance()`` moves to the next boundary that has not yet passed;
    the boundaries that passed while the inference ran are counted in ``missed``.
    """

    def __init__(self, period_s: float, clock: SlotClock) -> None:
        if not (math.isfinite(period_s) and period_s > 0):
            raise InvalidValueError(f"the schedule period must be > 0 s, got {period_s!r}")
        self.period_s = period_s
        self.clock = clock
        self.missed = 0
        self._t0: float | None = None
        self._index = 0

    def start(self) -> None:
        self._t0 = self.clock.now()
        self._index = 0
        self.missed = 0

    @property
    def index(self) -> int:
        """The number of the current slot (0 = the first)."""
        return self._index

    @property
    def deadline(self) -> float:
        """When the current slot starts."""
        if self._t0 is None:
            raise RuntimeError("the schedule has not started")
        return self._t0 + self._index * self.period_s

    def advance(self) -> float:
        """Move past the slot just used, skipping (and counting) boundaries already gone."""
        if self._t0 is None:
            raise RuntimeError("the schedule has not started")
        nxt = self._index + 1
        elapsed_slots = (self.clock.now() - self._t0) / self.period_s
        due = max(nxt, math.ceil(elapsed_slots - 1e-9))  # a boundary reached exactly is on time
        self.missed += due - nxt
        self._index = due
        return self.deadline


def dummy_tensor(input_shape: Sequence[int]) -> NDArray[np.float32]:
    """The fixed stand-in for "no new face": zeros of the model's input shape, so its
    inference has exactly the shape, and therefore the messages, of a real one."""
    shape = tuple(int(s) for s in input_shape)
    if not shape or any(s < 1 for s in shape):
        raise InvalidValueError(f"bad model input shape {shape}")
    return np.zeros(shape, dtype=np.float32)
