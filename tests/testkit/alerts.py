"""Test helpers for alerts: scripted sinks and alert builders (imported by tests)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from secfepas_sdk.alerts.alert import Alert, AlertKind
from secfepas_sdk.alerts.assessment import PainAssessment
from secfepas_sdk.errors import PermanentSinkError, TransientSinkError
from secfepas_sdk.retry import RetryPolicy
from testkit.wait import WaitTimeout, wait_until

FAST_RETRY = RetryPolicy(initial_s=0.02, multiplier=2.0, max_s=0.2, jitter_up=0.0)


def make_alert(level: int = 2, camera: str = "cam-1", t: float = 1_700_000_000.0) -> Alert:
    probs = [0.0] * 4
    probs[level] = 1.0
    assessment = PainAssessment(
        level=level, probabilities=tuple(probs), frame_time=t, camera_id=camera, model_id="m"
    )
    return Alert.from_assessment(assessment, kind=AlertKind.PAIN, episode_start=t)


class RecordingSink:
    """Keeps what it received, with the time it arrived; can fail its first calls."""

    def __init__(
        self, name: str, *, fail_first: int = 0, permanent: bool = False, delay: float = 0.0
    ) -> None:
        self._name = name
        self.fail_first = fail_first
        self.refuse: set[str] = set()  # alert ids that always fail (transient)
        self.permanent = permanent
        self.delay = delay
        self.calls = 0
        self.tried: list[str] = []  # alert_id of every call, in order
        self.in_flight = 0
        self.max_in_flight = 0
        self.received: list[tuple[float, Alert]] = []
        self.closed = False
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return self._name

    def deliver(self, alert: Alert) -> None:
        with self._lock:
            self.calls += 1
            calls = self.calls
            self.tried.append(str(alert.alert_id))
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            self._outcome(alert, calls)
        finally:
            with self._lock:
                self.in_flight -= 1

    def _outcome(self, alert: Alert, calls: int) -> None:
        if self.delay:
            time.sleep(self.delay)
        if self.permanent:
            raise PermanentSinkError("HTTP 400: rejected")
        if calls <= self.fail_first or str(alert.alert_id) in self.refuse:
            raise TransientSinkError(f"down (call {calls})")
        with self._lock:
            self.received.append((time.monotonic(), alert))

    def close(self) -> None:
        self.closed = True

    def ids(self) -> list[str]:
        with self._lock:
            return [str(a.alert_id) for _, a in self.received]


class RaisingSink(RecordingSink):
    """A buggy plugin: raises a non-SDK exception every time."""

    def deliver(self, alert: Alert) -> None:
        self.calls += 1
        raise RuntimeError("plugin bug")


class HangingSink(RecordingSink):
    """Blocks in ``deliver`` until released, like a peer that never answers."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.release = threading.Event()
        self.entered = threading.Event()

    def deliver(self, alert: Alert) -> None:
        self.entered.set()
        self.release.wait(60)


def wait_for(predicate: Callable[[], bool], timeout: float, step: float = 0.01) -> bool:
    """:func:`testkit.wait.wait_until` for ``assert wait_for(...)``: False at the deadline."""
    try:
        wait_until(predicate, timeout, step)
    except WaitTimeout:
        return False
    return True
