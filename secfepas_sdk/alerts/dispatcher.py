"""Deliver the outbox to its sinks: one thread per sink, each with its own back-off.

A sink that raises only delays itself; one that hangs holds only its own thread,
which is a daemon so it never keeps the process alive. The camera pipeline only
writes to the outbox and wakes the threads; it never waits for a sink.

A sink that comes back drains its backlog at once: the first delivery that
succeeds after a failure (or the first one of a run, since a previous run's rows
may be backing off) brings that sink's waiting rows forward, and the thread then
delivers them oldest first, one at a time, as it delivers new alerts. Without it
each row would wait out its own back-off, up to a minute after the sink is up.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from typing import Literal

from pydantic import ValidationError

from secfepas_sdk.alerts.alert import Alert
from secfepas_sdk.alerts.outbox import Outbox
from secfepas_sdk.alerts.sinks import AlertSink
from secfepas_sdk.errors import ConfigError, PermanentSinkError
from secfepas_sdk.retry import RetryPolicy

__all__ = ["Dispatcher"]

_log = logging.getLogger(__name__)

_Outcome = Literal["delivered", "failed", "dead"]


class Dispatcher:
    """Runs one delivery thread per sink over a shared :class:`Outbox`."""

    def __init__(
        self,
        outbox: Outbox,
        sinks: Sequence[AlertSink],
        *,
        retry: RetryPolicy | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        names = [s.name for s in sinks]
        if len(set(names)) != len(names):
            raise ConfigError(f"sink names must be unique, got {names}")
        self._outbox = outbox
        self._sinks = list(sinks)
        self._retry = retry if retry is not None else RetryPolicy()
        self._clock = clock
        self._stop = threading.Event()
        self._wake = {s.name: threading.Event() for s in sinks}
        self._threads = [
            threading.Thread(target=self._run, args=(s,), name=f"alert-sink:{s.name}", daemon=True)
            for s in sinks
        ]
        self._started = False

    @property
    def sink_names(self) -> list[str]:
        return [s.name for s in self._sinks]

    def start(self) -> None:
        if self._started:
            return
        self._started = True
        for thread in self._threads:
            thread.start()

    def notify(self) -> None:
        """Wake every sink thread: new alerts are in the outbox."""
        for event in self._wake.values():
            event.set()

    def close(self, timeout: float = 5.0) -> list[str]:
        """Stop the threads; return the names of sinks still stuck in ``deliver``.

        Sinks whose thread stopped are closed; a stuck one is left alone, since
        closing it under its own running ``deliver`` is not safe.
        """
        self._stop.set()
        self.notify()
        deadline = time.monotonic() + timeout
        stuck: list[str] = []
        for sink, thread in zip(self._sinks, self._threads, strict=True):
            if thread.is_alive():
                thread.join(max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                stuck.append(sink.name)
                continue
            try:
                sink.close()
            except Exception as exc:  # one sink's close must not stop the others
                _log.warning("closing alert sink %s failed: %r", sink.name, exc)
        if stuck:
            _log.warning("alert sinks still delivering at close: %s", ", ".join(stuck))
        return stuck

    def _run(self, sink: AlertSink) -> None:
        wake = self._wake[sink.name]
        # True while rows of this sink may be backing off for a failure the sink
        # has since got over: at start (a previous run's rows) and after a failure.
        suspect = True
        try:
            while not self._stop.is_set():
                wake.clear()
                batch = self._outbox.due(sink.name, now=self._clock())
                for item in batch:
                    if self._stop.is_set():
                        return
                    outcome = self._deliver_one(sink, item.alert_id, item.payload, item.attempts)
                    if outcome == "failed":
                        suspect = True
                    elif outcome == "delivered" and suspect:
                        suspect = False
                        if self._bring_forward(sink.name):
                            break  # read the queue again, oldest first
                if batch:
                    continue
                nxt = self._outbox.next_attempt(sink.name)
                wait = 3600.0 if nxt is None else max(0.0, nxt - self._clock())
                wake.wait(min(wait, 3600.0))
        except sqlite3.ProgrammingError:
            return  # the outbox was closed under a thread that had been stuck

    def _bring_forward(self, name: str) -> int:
        """The sink took an alert after failing: make its backed-off rows due now."""
        moved = self._outbox.bring_forward(name, now=self._clock())
        if moved:
            _log.info("alert sink %s is back: %d waiting delivery(ies) due now", name, moved)
        return moved

    def _deliver_one(self, sink: AlertSink, alert_id: str, payload: str, attempts: int) -> _Outcome:
        try:
            alert = Alert.from_json(payload)
        except ValidationError as exc:
            self._outbox.dead_letter(alert_id, sink.name, reason=f"corrupt stored alert: {exc}")
            return "dead"
        try:
            sink.deliver(alert)
        except PermanentSinkError as exc:
            _log.warning("alert %s dead-lettered for sink %s: %s", alert_id, sink.name, exc)
            self._outbox.dead_letter(alert_id, sink.name, reason=f"permanent: {exc}")
            return "dead"
        except Exception as exc:  # transient, or a plugin bug: retry with back-off
            failures = attempts + 1
            limit = self._retry.attempts
            if limit is not None and failures >= limit:
                self._outbox.dead_letter(
                    alert_id, sink.name, reason=f"gave up after {failures} attempts: {exc!r}"
                )
                return "failed"
            delay = self._retry.delay(failures)
            _log.info(
                "alert sink %s failed (attempt %d), retrying in %.1f s: %r",
                sink.name,
                failures,
                delay,
                exc,
            )
            self._outbox.retry_later(alert_id, sink.name, at=self._clock() + delay, error=repr(exc))
            return "failed"
        self._outbox.delivered(alert_id, sink.name)
        return "delivered"
