"""The facade the camera pipeline calls: assessments in, durable alerts out.

``PainAssessment -> AlertPolicy -> Alert -> Outbox -> Dispatcher -> sinks``.
``submit`` runs the policy and writes the outbox (one small sqlite transaction);
it never waits for a sink.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from secfepas_sdk.alerts.alert import Alert
from secfepas_sdk.alerts.assessment import PainAssessment
from secfepas_sdk.alerts.dispatcher import Dispatcher
from secfepas_sdk.alerts.outbox import DEFAULT_DEAD_LETTER_MAX_AGE_S, Outbox
from secfepas_sdk.alerts.policy import AlertPolicy, PolicyConfig
from secfepas_sdk.alerts.sinks import AlertSink, load_sinks
from secfepas_sdk.errors import ConfigError
from secfepas_sdk.retry import RetryPolicy

__all__ = ["DEFAULT_CLOSE_TIMEOUT_S", "AlertService"]

_log = logging.getLogger(__name__)

DEFAULT_CLOSE_TIMEOUT_S = 5.0
"""How long ``close()`` may keep delivering pending alerts, and stopping, in all."""


class AlertService:
    """Owns the policy, the outbox and the delivery threads for one camera process.

    Pending alerts from a previous run (same outbox file) are delivered on start,
    to the sinks that still have the same names.
    """

    def __init__(
        self,
        sinks: Sequence[AlertSink],
        *,
        outbox: str | Path | Outbox,
        policy: AlertPolicy | PolicyConfig | None = None,
        retry: RetryPolicy | None = None,
        max_alerts: int = 10_000,
        dead_letter_max_age_s: float | None = DEFAULT_DEAD_LETTER_MAX_AGE_S,
    ) -> None:
        if not sinks:
            raise ConfigError("the alert service needs at least one sink")
        if isinstance(policy, AlertPolicy):
            self.policy = policy
        else:
            self.policy = AlertPolicy(config=policy if policy is not None else PolicyConfig())
        self.outbox = (
            outbox
            if isinstance(outbox, Outbox)
            else Outbox(outbox, max_alerts=max_alerts, dead_letter_max_age_s=dead_letter_max_age_s)
        )
        self._dispatcher = Dispatcher(self.outbox, sinks, retry=retry)
        self._closed = False
        self._dispatcher.start()

    @classmethod
    def from_uris(
        cls,
        uris: Sequence[str],
        *,
        outbox: str | Path,
        camera_id: str = "camera",
        policy: AlertPolicy | PolicyConfig | None = None,
        retry: RetryPolicy | None = None,
        max_alerts: int = 10_000,
        dead_letter_max_age_s: float | None = DEFAULT_DEAD_LETTER_MAX_AGE_S,
    ) -> AlertService:
        """Load sinks through their plugins (``console:``, ``mqtts://...``, ``fhir+https://...``)."""
        sinks = load_sinks(uris, camera_id=camera_id)
        try:
            return cls(
                sinks,
                outbox=outbox,
                policy=policy,
                retry=retry,
                max_alerts=max_alerts,
                dead_letter_max_age_s=dead_letter_max_age_s,
            )
        except BaseException:
            for sink in sinks:
                sink.close()
            raise

    @property
    def sink_names(self) -> list[str]:
        return self._dispatcher.sink_names

    def submit(self, assessment: PainAssessment) -> Alert | None:
        """Feed one analysed frame; store and schedule the alert it causes, if any."""
        alert = self.policy.evaluate(assessment)
        if alert is not None:
            self.publish(alert)
        return alert

    def publish(self, alert: Alert) -> None:
        """Store ``alert`` for every sink and wake the delivery threads."""
        if self._closed:
            raise ConfigError("the alert service is closed")
        self.outbox.put(alert, self._dispatcher.sink_names)
        self._dispatcher.notify()

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no delivery is pending; False on timeout (e.g. a sink is down)."""
        deadline = time.monotonic() + timeout
        while self.outbox.pending() > 0:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.02)
        return True

    def _flush(self, seconds: float) -> bool:
        """Wait until nothing is pending, or until nothing pending can become due in time."""
        deadline = time.monotonic() + seconds
        while self.outbox.pending() > 0:
            left = deadline - time.monotonic()
            due = [self.outbox.next_attempt(name) for name in self.sink_names]
            soonest = min((t for t in due if t is not None), default=None)
            if left <= 0 or (soonest is not None and soonest > time.time() + left):
                return False  # every sink left is backing off past the deadline
            time.sleep(0.02)
        return True

    def close(self, timeout: float = DEFAULT_CLOSE_TIMEOUT_S, *, flush: bool = True) -> list[str]:
        """Deliver what is pending, then stop, all within ``timeout`` seconds.

        So an alert submitted just before ``close()`` still reaches its sinks.
        What a sink could not take in time (it is down and backing off, or
        hangs) stays in the outbox for the next start; ``flush=False`` stops at
        once. Returns the names of sinks still stuck in ``deliver``.
        """
        if self._closed:
            return []
        self._closed = True
        # Keep part of the budget for the threads to stop after the flush.
        flush_s = timeout - min(0.5, timeout / 2)
        if flush and self.outbox.pending() > 0 and not self._flush(flush_s):
            _log.warning(
                "%d alert delivery(ies) still pending at close; kept in the outbox "
                "for the next start",
                self.outbox.pending(),
            )
        stuck = self._dispatcher.close(timeout - flush_s)
        if not stuck:
            self.outbox.close()
        return stuck

    def __enter__(self) -> AlertService:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
