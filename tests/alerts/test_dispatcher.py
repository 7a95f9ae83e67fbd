"""Delivery threads: retries, dead letters, and isolation of failing or hanging sinks."""

from __future__ import annotations

import math
import time
from pathlib import Path

from testkit.alerts import (
    FAST_RETRY,
    HangingSink,
    RaisingSink,
    RecordingSink,
    make_alert,
    wait_for,
)

from secfepas_sdk.alerts.alert import AlertKind
from secfepas_sdk.alerts.assessment import PainAssessment
from secfepas_sdk.alerts.outbox import Outbox
from secfepas_sdk.alerts.policy import PolicyConfig
from secfepas_sdk.alerts.service import AlertService
from secfepas_sdk.retry import RetryPolicy

# A failed delivery waits a minute: far longer than any of these tests may take.
SLOW_RETRY = RetryPolicy(initial_s=60.0, max_s=60.0, jitter_up=0.0)


def test_transient_failures_retry_until_delivered_once(tmp_path: Path) -> None:
    flaky = RecordingSink("flaky", fail_first=3)
    with AlertService([flaky], outbox=tmp_path / "o.db", retry=FAST_RETRY) as service:
        alert = make_alert()
        service.publish(alert)
        assert service.wait_idle(5.0)
    assert flaky.ids() == [str(alert.alert_id)]
    assert flaky.calls == 4
    assert flaky.closed


def test_permanent_failure_dead_letters_without_retry(tmp_path: Path) -> None:
    bad = RecordingSink("fhir", permanent=True)
    good = RecordingSink("mqtt")
    service = AlertService([bad, good], outbox=tmp_path / "o.db", retry=FAST_RETRY)
    alert = make_alert()
    service.publish(alert)
    assert service.wait_idle(5.0)
    (dead,) = service.outbox.dead_letters()
    assert dead.sink == "fhir" and "HTTP 400" in dead.reason and bad.calls == 1
    assert good.ids() == [str(alert.alert_id)]
    service.close()


def test_max_attempts_gives_up_into_dead_letters(tmp_path: Path) -> None:
    sink = RaisingSink("buggy")
    retry = RetryPolicy(initial_s=0.01, max_s=0.01, jitter_up=0.0, attempts=3)
    with AlertService([sink], outbox=tmp_path / "o.db", retry=retry) as service:
        service.publish(make_alert())
        assert service.wait_idle(5.0)
        (dead,) = service.outbox.dead_letters()
    assert sink.calls == 3 and "gave up after 3 attempts" in dead.reason


def test_raising_sink_does_not_delay_others(tmp_path: Path) -> None:
    buggy = RaisingSink("buggy")
    good = RecordingSink("good")
    service = AlertService([buggy, good], outbox=tmp_path / "o.db", retry=FAST_RETRY)
    start = time.monotonic()
    alerts = [make_alert() for _ in range(20)]
    for alert in alerts:
        service.publish(alert)
    assert wait_for(lambda: len(good.received) == 20, 5.0)
    assert good.received[-1][0] - start < 3.0
    assert good.ids() == [str(a.alert_id) for a in alerts]
    assert service.outbox.pending("buggy") == 20  # kept for later, not lost
    service.close()


def test_hanging_sink_does_not_delay_others_or_close(tmp_path: Path) -> None:
    hung = HangingSink("hung")
    good = RecordingSink("good")
    service = AlertService([hung, good], outbox=tmp_path / "o.db", retry=FAST_RETRY)
    start = time.monotonic()
    for _ in range(10):
        service.publish(make_alert())
    assert hung.entered.wait(5.0)
    assert wait_for(lambda: len(good.received) == 10, 5.0)
    assert good.received[-1][0] - start < 3.0  # the hung sink would hold it for 60 s
    t0 = time.monotonic()
    assert service.close(timeout=0.3) == ["hung"]
    assert time.monotonic() - t0 < 2.0
    assert good.closed and not hung.closed
    hung.release.set()


def test_submit_runs_policy_and_does_not_wait_for_sinks(tmp_path: Path) -> None:
    slow = RecordingSink("slow", delay=0.5)
    service = AlertService(
        [slow], outbox=tmp_path / "o.db", policy=PolicyConfig(resolve_after=1, cooldown_s=0)
    )
    levels = [0, 2, 3, 0, 0, 2]
    t0 = time.monotonic()
    alerts = []
    for i, level in enumerate(levels):
        probs = [0.0] * 4
        probs[level] = 1.0
        assessment = PainAssessment(
            level=level, probabilities=tuple(probs), frame_time=1e9 + i, camera_id="bed-4"
        )
        alerts.append(service.submit(assessment))
    assert time.monotonic() - t0 < 1.0  # four blocking deliveries would take 2 s
    kinds = [a.kind for a in alerts if a is not None]
    assert kinds == [AlertKind.PAIN, AlertKind.ESCALATION, AlertKind.RESOLVED, AlertKind.PAIN]
    assert service.wait_idle(5.0)
    assert [a.kind for _, a in slow.received] == kinds
    service.close()


def test_pending_alerts_from_a_previous_run_are_delivered(tmp_path: Path) -> None:
    down = RaisingSink("mqtt")
    first = AlertService([down], outbox=tmp_path / "o.db", retry=FAST_RETRY)
    alerts = [make_alert() for _ in range(5)]
    for alert in alerts:
        first.publish(alert)
    first.close()
    up = RecordingSink("mqtt")
    with AlertService([up], outbox=tmp_path / "o.db") as second:
        assert second.wait_idle(5.0)
    assert sorted(up.ids()) == sorted(str(a.alert_id) for a in alerts)


def test_a_sink_that_is_back_drains_its_backlog_at_once_in_order(tmp_path: Path) -> None:
    ehr = RecordingSink("ehr", fail_first=10)
    with AlertService([ehr], outbox=tmp_path / "o.db", retry=SLOW_RETRY) as service:
        backlog = [make_alert() for _ in range(10)]
        for alert in backlog:
            service.publish(alert)
        assert wait_for(lambda: service.outbox.retrying() == 10, 5)  # each refused once
        soonest = service.outbox.next_attempt("ehr")
        assert soonest is not None and soonest > time.time() + 50
        fresh = make_alert()
        service.publish(fresh)  # the sink takes it: it is back
        assert service.wait_idle(5), "the backlog waited for its own back-off"
    assert ehr.ids() == [str(fresh.alert_id)] + [str(a.alert_id) for a in backlog]
    assert ehr.calls == 21 and ehr.max_in_flight == 1  # each once more, one at a time


def test_a_previous_runs_backed_off_rows_follow_the_first_success(tmp_path: Path) -> None:
    path, now = tmp_path / "o.db", time.time()
    box = Outbox(path)
    alerts = [make_alert() for _ in range(3)]
    for alert, at in zip(alerts, (now + 0.2, now + 600, now + 900), strict=True):
        box.put(alert, ["ehr"], now=now)
        box.retry_later(str(alert.alert_id), "ehr", at=at, error="down")
    box.close()
    ehr = RecordingSink("ehr")
    with AlertService([ehr], outbox=path, retry=SLOW_RETRY) as service:
        assert service.wait_idle(5), "rows due in 10 and 15 minutes were not brought forward"
    assert ehr.ids() == [str(a.alert_id) for a in alerts]


def test_a_row_that_fails_alone_is_brought_forward_once_per_recovery(tmp_path: Path) -> None:
    ehr = RecordingSink("ehr")
    poison, good = make_alert(), make_alert()
    ehr.refuse = {str(poison.alert_id)}
    retry = RetryPolicy(initial_s=3600.0, max_s=3600.0, jitter_up=0.0)
    service = AlertService([ehr], outbox=tmp_path / "o.db", retry=retry)
    service.publish(poison)
    assert wait_for(lambda: service.outbox.retrying() == 1, 5)
    service.publish(good)
    assert wait_for(lambda: len(ehr.tried) == 3, 5)
    assert service.close(flush=False) == []
    # Once more after the success that followed its failure, then its own back-off.
    assert ehr.tried == [str(poison.alert_id), str(good.alert_id), str(poison.alert_id)]
    box = Outbox(tmp_path / "o.db")
    (row,) = box.due("ehr", now=math.inf)
    assert row.alert_id == str(poison.alert_id) and row.attempts == 2
    assert box.due("ehr", now=time.time() + 3000) == []
    box.close()
