"""The sqlite outbox: durable, per-sink, bounded, with dead letters."""

from __future__ import annotations

import os
import sqlite3
import stat
import time
from pathlib import Path

import pytest
from testkit.alerts import make_alert

from secfepas_sdk.alerts.alert import Alert
from secfepas_sdk.alerts.outbox import Outbox
from secfepas_sdk.errors import ConfigError, SinkError
from secfepas_sdk.retry import RetryPolicy


def test_put_due_delivered_per_sink(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db")
    a, b = make_alert(), make_alert(3)
    box.put(a, ["s1", "s2"], now=10.0)
    box.put(b, ["s1", "s2"], now=11.0)
    due = box.due("s1", now=11.0)
    assert [d.alert_id for d in due] == [str(a.alert_id), str(b.alert_id)]
    assert Alert.from_json(due[0].payload) == a
    box.delivered(str(a.alert_id), "s1")
    assert box.pending("s1") == 1 and box.pending("s2") == 2 and box.pending_alerts() == 2
    box.delivered(str(a.alert_id), "s2")
    assert box.pending_alerts() == 1  # a is gone once every sink has it
    box.put(b, ["s1", "s2"], now=12.0)  # same id again: idempotent
    assert box.pending() == 2
    box.close()


def test_back_off_hides_until_due(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db")
    a = make_alert()
    box.put(a, ["s"], now=0.0)
    box.retry_later(str(a.alert_id), "s", at=5.0, error="down")
    assert box.due("s", now=4.9) == []
    assert box.next_attempt("s") == 5.0
    (item,) = box.due("s", now=5.0)
    assert item.attempts == 1


def test_retrying_counts_deliveries_that_failed(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db")
    a, b = make_alert(), make_alert()
    box.put(a, ["s1", "s2"], now=0.0)
    box.put(b, ["s1"], now=0.0)
    assert box.retrying() == 0
    box.retry_later(str(a.alert_id), "s1", at=5.0, error="down")
    box.retry_later(str(a.alert_id), "s1", at=9.0, error="down")
    assert (box.retrying(), box.retrying("s1"), box.retrying("s2")) == (1, 1, 0)
    box.delivered(str(a.alert_id), "s1")
    assert box.retrying() == 0 and box.pending() == 2


def test_bring_forward_makes_one_sinks_backed_off_rows_due_and_keeps_attempts(
    tmp_path: Path,
) -> None:
    box = Outbox(tmp_path / "o.db")
    a, b, c = make_alert(), make_alert(), make_alert()
    for alert in (a, b, c):
        box.put(alert, ["s1", "s2"], now=0.0)
    box.retry_later(str(a.alert_id), "s1", at=50.0, error="down")
    box.retry_later(str(b.alert_id), "s1", at=60.0, error="down")
    box.retry_later(str(a.alert_id), "s2", at=70.0, error="down")
    assert box.bring_forward("s1", now=10.0) == 2  # c was due already
    due = box.due("s1", now=10.0)
    assert [(d.alert_id, d.attempts) for d in due] == [
        (str(a.alert_id), 1),
        (str(b.alert_id), 1),
        (str(c.alert_id), 0),
    ]
    assert [d.alert_id for d in box.due("s2", now=10.0)] == [str(b.alert_id), str(c.alert_id)]
    assert box.next_attempt("s2") == 0.0 and box.bring_forward("s1", now=10.0) == 0
    box.close()


def test_survives_reopen(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    box = Outbox(path)
    alerts = [make_alert() for _ in range(5)]
    for alert in alerts:
        box.put(alert, ["mqtt", "fhir"])
    box.delivered(str(alerts[0].alert_id), "mqtt")
    box.close()
    again = Outbox(path)
    assert again.pending("mqtt") == 4 and again.pending("fhir") == 5
    assert again.pending_alerts() == 5


def test_dead_letter_keeps_payload_and_reason(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db")
    a = make_alert()
    box.put(a, ["fhir", "mqtt"])
    box.dead_letter(str(a.alert_id), "fhir", reason="permanent: HTTP 400")
    (dead,) = box.dead_letters()
    assert (dead.alert_id, dead.sink, dead.reason) == (
        str(a.alert_id),
        "fhir",
        "permanent: HTTP 400",
    )
    assert Alert.from_json(dead.payload) == a
    assert box.pending("fhir") == 0 and box.pending("mqtt") == 1


def test_bounded_evicts_oldest_into_dead_letters(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db", max_alerts=3, max_dead_letters=2)
    alerts = [make_alert() for _ in range(6)]
    for alert in alerts:
        box.put(alert, ["s"])
    assert box.pending_alerts() == 3 and box.evicted == 3
    assert [d.alert_id for d in box.due("s", now=1e12)] == [str(a.alert_id) for a in alerts[3:]]
    dead = box.dead_letters()  # bounded too: the two most recent evictions
    assert [d.alert_id for d in dead] == [str(a.alert_id) for a in alerts[1:3]]
    assert all(d.reason == "evicted: outbox full" for d in dead)


def test_rejects_bad_settings(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        Outbox(tmp_path / "o.db", max_alerts=0)
    with pytest.raises(ConfigError):
        Outbox(tmp_path / "o.db").put(make_alert(), [])
    (tmp_path / "a-file").write_text("")
    with pytest.raises(ConfigError, match="outbox"):
        Outbox(tmp_path / "a-file" / "o.db")
    with pytest.raises(ConfigError, match="dead_letter_max_age_s"):
        Outbox(tmp_path / "o.db", dead_letter_max_age_s=0)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_outbox_file_is_private_and_its_new_directory_too(tmp_path: Path) -> None:
    old = os.umask(0o022)  # the usual umask would give 0644 / 0755
    try:
        path = tmp_path / "new-dir" / "o.db"
        box = Outbox(path)
        box.put(make_alert(), ["s"])
        assert _mode(path.parent) == 0o700
        files = [p for p in path.parent.iterdir() if p.name.startswith("o.db")]
        assert path in files and len(files) >= 2  # the WAL files hold alerts too
        assert {p.name: _mode(p) for p in files} == {p.name: 0o600 for p in files}
        box.close()
    finally:
        os.umask(old)


def test_an_outbox_readable_by_others_is_tightened(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    path.touch(mode=0o644)
    os.chmod(path, 0o644)
    Outbox(path).close()
    assert _mode(path) == 0o600


def test_dead_letters_expire_by_age_on_open_and_as_the_outbox_is_used(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    now = time.time()
    box = Outbox(path, dead_letter_max_age_s=3600.0, prune_interval_s=0.0)
    old, recent = make_alert(), make_alert()
    for a in (old, recent):
        box.put(a, ["s"], now=now)
    box.dead_letter(str(old.alert_id), "s", reason="permanent: x", now=now - 3000)
    box.dead_letter(str(recent.alert_id), "s", reason="permanent: y", now=now - 60)
    assert len(box.dead_letters()) == 2
    box.put(make_alert(), ["s"], now=now + 1000)  # use prunes (here: every time)
    assert [d.alert_id for d in box.dead_letters()] == [str(recent.alert_id)]
    box.close()
    # On open, with the default (7 days): an 8-day-old letter goes, the recent one stays.
    raw = sqlite3.connect(path)
    raw.execute(
        "INSERT INTO dead_letters (alert_id, sink, payload, reason, attempts, failed_at) "
        "VALUES ('ancient', 's', '{}', 'r', 1, ?)",
        (now - 8 * 24 * 3600,),
    )
    raw.commit()
    raw.close()
    again = Outbox(path)
    assert [d.alert_id for d in again.dead_letters()] == [str(recent.alert_id)]
    assert again.pruned == 1
    again.close()


def test_dead_letters_can_be_kept_without_an_age_limit(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db", dead_letter_max_age_s=None, prune_interval_s=0.0)
    a = make_alert()
    box.put(a, ["s"])
    box.dead_letter(str(a.alert_id), "s", reason="r", now=0.0)
    assert box.prune() == 0 and len(box.dead_letters()) == 1


def test_write_is_committed_before_put_returns(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    box = Outbox(path)
    a = make_alert()
    box.put(a, ["s"])
    other = sqlite3.connect(path)  # another connection sees it at once
    assert other.execute("SELECT alert_id FROM alerts").fetchall() == [(str(a.alert_id),)]


@pytest.mark.parametrize(
    ("attempts", "expected"), [(1, 0.5), (2, 1.0), (3, 2.0), (8, 60.0), (500, 60.0)]
)
def test_retry_back_off(attempts: int, expected: float) -> None:
    policy = RetryPolicy(initial_s=0.5, multiplier=2.0, max_s=60.0, jitter_up=0.0)
    assert policy.delay(attempts) == expected
    jittered = RetryPolicy(initial_s=0.5, multiplier=2.0, max_s=60.0, jitter_up=0.5).delay(attempts)
    assert expected <= jittered <= expected * 1.5


@pytest.mark.parametrize(
    "kwargs",
    [{"initial_s": 0}, {"multiplier": 0.5}, {"max_s": 0.1}, {"jitter_up": 2}, {"attempts": 0}],
)
def test_retry_rejects_bad_settings(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


def test_store_failure_is_an_sdk_error(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db")
    box.close()
    with pytest.raises(SinkError, match="cannot store"):
        box.put(make_alert(), ["s"])
