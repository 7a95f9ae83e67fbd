"""The facade the camera pipeline calls: assessments in, durable alerts out.

``PainAssessment -> AlertPolicy -> Alert -> Outbox -> Dispatcher -> sinks``.
``submit`` runs the policy and writes the outbox (one small sqlite transaction);
it never waits for a sink.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from secfepas_sdk.alerts.alert import Alert
from secfepas_sdk.alerts.assessment import PainAssessment
from secfepas_sdk.alerts.dispatcher import Dispatcher, RetryPolicy
from secfepas_sdk.alerts.outbox import DEFAULT_DEAD_LETTER_MAX_AGE_S, Outbox
from secfepas_sdk.alerts.policy import AlertPolicy, PolicyConfig
from secfepas_sdk.alerts.sinks import AlertSink, load_sinks
from secfepas_sdk.errors import ConfigError

__all__ = ["AlertService"]


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

    def close(self, timeout: float = 5.0) -> list[str]:
        """Stop delivering (pending alerts stay in the outbox); return stuck sink names."""
        if self._closed:
            return []
        self._closed = True
        stuck = self._dispatcher.close(timeout)
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
