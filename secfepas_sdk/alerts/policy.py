"""When a stream of pain assessments becomes an alert.

The decision is a pure function, :func:`decide`, of the policy settings, one
camera's :class:`EpisodeState` and the next assessment, so that every rule can be
tested on tables of levels without clocks or I/O. :class:`AlertPolicy` only keeps
the state per camera and turns decisions into :class:`Alert` objects.

Rules (docs/alerts.md has the full semantics):
- an episode opens when the level is ``>= threshold`` on ``consecutive`` frames in a
  row; it sends a ``pain`` alert unless a cool-down is running;
- while it is open, a level above the highest level reported in it sends ``escalation``;
- ``resolve_after`` frames in a row below the threshold close it; a ``resolved``
  alert follows if the episode sent anything;
- the cool-down: a ``pain`` alert is not repeated within ``cooldown_s`` seconds
  (frame time) of the previous one. An episode opened during the cool-down is
  tracked silently, but escalations in it still fire: worse pain is never muted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from secfepas_sdk.alerts.alert import Alert, AlertKind
from secfepas_sdk.alerts.assessment import PAIN_LEVELS, PainAssessment
from secfepas_sdk.errors import InvalidValueError

__all__ = ["AlertPolicy", "EpisodeState", "PolicyConfig", "decide"]

_MAX_LEVEL = len(PAIN_LEVELS) - 1


@dataclass(frozen=True, slots=True, kw_only=True)
class PolicyConfig:
    """Settings of the alert policy; the defaults suit a bedside camera."""

    threshold: int = 2
    consecutive: int = 1
    resolve_after: int = 3
    cooldown_s: float = 300.0
    escalate: bool = True

    def __post_init__(self) -> None:
        if not 1 <= self.threshold <= _MAX_LEVEL:
            raise InvalidValueError(f"threshold must be 1..{_MAX_LEVEL}, got {self.threshold}")
        if self.consecutive < 1:
            raise InvalidValueError(f"consecutive must be >= 1, got {self.consecutive}")
        if self.resolve_after < 1:
            raise InvalidValueError(f"resolve_after must be >= 1, got {self.resolve_after}")
        if not (math.isfinite(self.cooldown_s) and self.cooldown_s >= 0.0):
            raise InvalidValueError(f"cooldown_s must be finite and >= 0, got {self.cooldown_s}")


@dataclass(frozen=True, slots=True, kw_only=True)
class EpisodeState:
    """One camera's position in the policy; the initial state is ``EpisodeState()``."""

    above_run: int = 0
    run_start: float | None = None
    below_run: int = 0
    episode_start: float | None = None
    peak: int = 0
    alerted: bool = False
    last_pain_time: float | None = None

    @property
    def in_episode(self) -> bool:
        return self.episode_start is not None


def _cooling(config: PolicyConfig, state: EpisodeState, now: float) -> bool:
    # A clock that went backwards does not start an endless cool-down.
    if state.last_pain_time is None:
        return False
    return 0.0 <= now - state.last_pain_time < config.cooldown_s


def decide(
    config: PolicyConfig, state: EpisodeState, level: int, frame_time: float
) -> tuple[EpisodeState, AlertKind | None]:
    """Advance one camera's state by one analysed frame; pure, no I/O."""
    above = level >= config.threshold
    if not state.in_episode:
        run = state.above_run + 1 if above else 0
        start = (state.run_start if state.above_run else frame_time) if above else None
        if run < config.consecutive:
            return replace(state, above_run=run, run_start=start), None
        # The episode started with the first frame of the run that opened it.
        opened = EpisodeState(episode_start=start, peak=level)
        if _cooling(config, state, frame_time):
            return replace(opened, last_pain_time=state.last_pain_time), None
        return replace(opened, alerted=True, last_pain_time=frame_time), AlertKind.PAIN
    if above:
        if config.escalate and level > state.peak:
            return replace(state, below_run=0, peak=level, alerted=True), AlertKind.ESCALATION
        return replace(state, below_run=0), None
    below = state.below_run + 1
    if below < config.resolve_after:
        return replace(state, below_run=below), None
    closed = EpisodeState(last_pain_time=state.last_pain_time)
    return closed, (AlertKind.RESOLVED if state.alerted else None)


@dataclass(slots=True, kw_only=True)
class AlertPolicy:
    """Per-camera policy state; ``evaluate`` is called once per analysed frame.

    Not thread-safe: call it from the one thread that produces the assessments.
    """

    config: PolicyConfig = field(default_factory=PolicyConfig)
    patient_refs: dict[str, str] = field(default_factory=dict)
    _states: dict[str, EpisodeState] = field(default_factory=dict, init=False)

    def state(self, camera_id: str) -> EpisodeState:
        return self._states.get(camera_id, EpisodeState())

    def evaluate(self, assessment: PainAssessment) -> Alert | None:
        """Return the alert this frame causes, if any, and remember the new state."""
        before = self.state(assessment.camera_id)
        after, kind = decide(self.config, before, assessment.level, assessment.frame_time)
        self._states[assessment.camera_id] = after
        if kind is None:
            return None
        start = after.episode_start if after.episode_start is not None else before.episode_start
        return Alert.from_assessment(
            assessment,
            kind=kind,
            episode_start=start if start is not None else assessment.frame_time,
            patient_ref=self.patient_refs.get(assessment.camera_id),
        )
