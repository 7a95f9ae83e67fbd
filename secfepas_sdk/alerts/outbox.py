"""A durable, bounded outbox in sqlite: every alert is stored before delivery.

Guarantees (docs/alerts.md):
- at least once: a delivery row is deleted only after its sink returned, so a crash
  between the two re-delivers; receivers de-duplicate by ``alert_id``;
- per sink: each (alert, sink) pair is its own row with its own attempts and back-off,
  until the sink is seen back: then :meth:`Outbox.bring_forward` makes them all due;
- permanent failures move to ``dead_letters`` with the reason;
- bounded: with ``max_alerts`` alerts pending, storing one more evicts the oldest
  pending alert into ``dead_letters`` (reason ``evicted: outbox full``); the newest
  alerts matter most to a nurse, and the evicted ones stay inspectable;
- retention: dead letters are health data, so they are kept at most
  ``max_dead_letters`` rows and ``dead_letter_max_age_s`` seconds (default 7 days),
  pruned when the outbox opens and then at most once a minute as it is used;
- private: the file is created with mode 0600 (its WAL files inherit it), and a
  missing parent directory with 0700; an existing file readable by others is
  tightened to 0600, with a warning.

One process owns one outbox file. All database work happens under one lock;
deliveries happen outside it (see :mod:`secfepas_sdk.alerts.dispatcher`).
"""

from __future__ import annotations

import logging
import math
import os
import sqlite3
import stat
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from secfepas_sdk.alerts.alert import Alert
from secfepas_sdk.errors import ConfigError, SinkError

__all__ = ["DeadLetter", "Outbox", "PendingDelivery"]

_log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS alerts (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    alert_id TEXT NOT NULL UNIQUE,
    payload TEXT NOT NULL,
    stored_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS deliveries (
    alert_id TEXT NOT NULL REFERENCES alerts(alert_id) ON DELETE CASCADE,
    sink TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt REAL NOT NULL,
    last_error TEXT,
    PRIMARY KEY (alert_id, sink)
);
CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries (sink, next_attempt);
CREATE TABLE IF NOT EXISTS dead_letters (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    alert_id TEXT NOT NULL,
    sink TEXT NOT NULL,
    payload TEXT NOT NULL,
    reason TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    failed_at REAL NOT NULL
);
"""

_MAX_REASON = 500
DEFAULT_DEAD_LETTER_MAX_AGE_S = 7 * 24 * 3600.0
PRUNE_INTERVAL_S = 60.0


@dataclass(frozen=True, slots=True, kw_only=True)
class PendingDelivery:
    """One alert waiting for one sink."""

    alert_id: str
    sink: str
    payload: str
    attempts: int


@dataclass(frozen=True, slots=True, kw_only=True)
class DeadLetter:
    """An alert a sink will never take, with why."""

    alert_id: str
    sink: str
    payload: str
    reason: str
    attempts: int
    failed_at: float


class Outbox:
    """The sqlite store of alerts and their per-sink deliveries."""

    def __init__(
        self,
        path: str | Path,
        *,
        max_alerts: int = 10_000,
        max_dead_letters: int = 10_000,
        dead_letter_max_age_s: float | None = DEFAULT_DEAD_LETTER_MAX_AGE_S,
        prune_interval_s: float = PRUNE_INTERVAL_S,
    ) -> None:
        if max_alerts < 1 or max_dead_letters < 1:
            raise ConfigError("outbox bounds must be >= 1")
        if dead_letter_max_age_s is not None and not (
            math.isfinite(dead_letter_max_age_s) and dead_letter_max_age_s > 0
        ):
            raise ConfigError("dead_letter_max_age_s must be > 0 (or None to keep them)")
        if not (math.isfinite(prune_interval_s) and prune_interval_s >= 0):
            raise ConfigError("prune_interval_s must be >= 0")
        self.prune_interval_s = prune_interval_s
        self.path = Path(path)
        self.max_alerts = max_alerts
        self.max_dead_letters = max_dead_letters
        self.dead_letter_max_age_s = dead_letter_max_age_s
        self.evicted = 0
        self.pruned = 0
        self._last_prune = -math.inf
        self._lock = threading.Lock()
        _create_private(self.path)
        try:
            self._db = sqlite3.connect(
                str(self.path), timeout=30.0, isolation_level=None, check_same_thread=False
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise ConfigError(f"cannot open the alert outbox {self.path}: {exc}") from exc
        self.prune()

    def prune(self, *, now: float | None = None) -> int:
        """Drop dead letters beyond the count and age limits; returns how many went."""
        stamp = time.time() if now is None else now
        with self._lock, self._tx():
            removed = self._prune(stamp)
        return removed

    def put(self, alert: Alert, sinks: Sequence[str], *, now: float | None = None) -> None:
        """Store ``alert`` with one pending delivery per sink, durably, before returning."""
        if not sinks:
            raise ConfigError("an alert needs at least one sink")
        stamp = time.time() if now is None else now
        alert_id = str(alert.alert_id)
        try:
            with self._lock, self._tx():
                self._maybe_prune(stamp)
                self._evict_for_one_more(stamp)
                self._db.execute(
                    "INSERT OR IGNORE INTO alerts (alert_id, payload, stored_at) VALUES (?, ?, ?)",
                    (alert_id, alert.to_json(), stamp),
                )
                self._db.executemany(
                    "INSERT OR IGNORE INTO deliveries (alert_id, sink, next_attempt) "
                    "VALUES (?, ?, ?)",
                    [(alert_id, sink, stamp) for sink in sinks],
                )
        except sqlite3.Error as exc:  # disk full, file removed, closed outbox
            raise SinkError(f"the alert outbox {self.path} cannot store an alert: {exc}") from exc

    def due(self, sink: str, *, now: float, limit: int = 32) -> list[PendingDelivery]:
        """The oldest deliveries for ``sink`` whose back-off has passed."""
        with self._lock:
            rows = self._db.execute(
                "SELECT d.alert_id, a.payload, d.attempts FROM deliveries d "
                "JOIN alerts a ON a.alert_id = d.alert_id "
                "WHERE d.sink = ? AND d.next_attempt <= ? ORDER BY a.seq LIMIT ?",
                (sink, now, limit),
            ).fetchall()
        return [
            PendingDelivery(alert_id=r[0], sink=sink, payload=r[1], attempts=r[2]) for r in rows
        ]

    def next_attempt(self, sink: str) -> float | None:
        """When the next delivery for ``sink`` becomes due, or None if none is pending."""
        with self._lock:
            row = self._db.execute(
                "SELECT MIN(next_attempt) FROM deliveries WHERE sink = ?", (sink,)
            ).fetchone()
        return None if row is None or row[0] is None else float(row[0])

    def bring_forward(self, sink: str, *, now: float) -> int:
        """Make every delivery of ``sink`` that is backing off due at ``now``; how many.

        Attempts and errors are kept, so a failure after this backs off from where
        the row was and ``max_attempts`` still counts every real try.
        """
        with self._lock, self._tx():
            moved = self._db.execute(
                "UPDATE deliveries SET next_attempt = ? WHERE sink = ? AND next_attempt > ?",
                (now, sink, now),
            ).rowcount
        return int(moved)

    def delivered(self, alert_id: str, sink: str) -> None:
        """Forget one delivery; forget the alert once no sink still needs it."""
        with self._lock, self._tx():
            self._db.execute(
                "DELETE FROM deliveries WHERE alert_id = ? AND sink = ?", (alert_id, sink)
            )
            self._drop_if_done(alert_id)

    def retry_later(self, alert_id: str, sink: str, *, at: float, error: str) -> None:
        with self._lock, self._tx():
            self._db.execute(
                "UPDATE deliveries SET attempts = attempts + 1, next_attempt = ?, last_error = ? "
                "WHERE alert_id = ? AND sink = ?",
                (at, error[:_MAX_REASON], alert_id, sink),
            )

    def dead_letter(
        self, alert_id: str, sink: str, *, reason: str, now: float | None = None
    ) -> None:
        """Move one delivery to the dead-letter table; it will not be tried again."""
        stamp = time.time() if now is None else now
        with self._lock, self._tx():
            self._bury(alert_id, sink, reason, stamp)
            self._drop_if_done(alert_id)
            self._maybe_prune(stamp)

    def pending(self, sink: str | None = None) -> int:
        """How many deliveries wait (for one sink, or for all)."""
        with self._lock:
            if sink is None:
                row = self._db.execute("SELECT COUNT(*) FROM deliveries").fetchone()
            else:
                row = self._db.execute(
                    "SELECT COUNT(*) FROM deliveries WHERE sink = ?", (sink,)
                ).fetchone()
        return int(row[0])

    def retrying(self, sink: str | None = None) -> int:
        """How many pending deliveries have failed at least once (a sink down shows here)."""
        query = "SELECT COUNT(*) FROM deliveries WHERE attempts > 0"
        args: tuple[str, ...] = ()
        if sink is not None:
            query, args = query + " AND sink = ?", (sink,)
        with self._lock:
            row = self._db.execute(query, args).fetchone()
        return int(row[0])

    def pending_alerts(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM alerts").fetchone()[0])

    def dead_letters(self) -> list[DeadLetter]:
        with self._lock:
            rows = self._db.execute(
                "SELECT alert_id, sink, payload, reason, attempts, failed_at "
                "FROM dead_letters ORDER BY seq"
            ).fetchall()
        return [
            DeadLetter(
                alert_id=r[0], sink=r[1], payload=r[2], reason=r[3], attempts=r[4], failed_at=r[5]
            )
            for r in rows
        ]

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- internals (the caller holds the lock and an open transaction) --

    def _tx(self) -> _Transaction:
        return _Transaction(self._db)

    def _bury(self, alert_id: str, sink: str, reason: str, stamp: float) -> None:
        self._db.execute(
            "INSERT INTO dead_letters (alert_id, sink, payload, reason, attempts, failed_at) "
            "SELECT d.alert_id, d.sink, a.payload, ?, d.attempts, ? FROM deliveries d "
            "JOIN alerts a ON a.alert_id = d.alert_id WHERE d.alert_id = ? AND d.sink = ?",
            (reason[:_MAX_REASON], stamp, alert_id, sink),
        )
        self._db.execute("DELETE FROM deliveries WHERE alert_id = ? AND sink = ?", (alert_id, sink))
        self._db.execute(
            "DELETE FROM dead_letters WHERE seq <= (SELECT MAX(seq) FROM dead_letters) - ?",
            (self.max_dead_letters,),
        )

    def _maybe_prune(self, stamp: float) -> None:
        if time.monotonic() - self._last_prune >= self.prune_interval_s:
            self._prune(stamp)

    def _prune(self, stamp: float) -> int:
        self._last_prune = time.monotonic()
        removed = self._db.execute(
            "DELETE FROM dead_letters WHERE seq <= (SELECT MAX(seq) FROM dead_letters) - ?",
            (self.max_dead_letters,),
        ).rowcount
        if self.dead_letter_max_age_s is not None:
            removed += self._db.execute(
                "DELETE FROM dead_letters WHERE failed_at < ?",
                (stamp - self.dead_letter_max_age_s,),
            ).rowcount
        self.pruned += removed
        return removed

    def _drop_if_done(self, alert_id: str) -> None:
        self._db.execute(
            "DELETE FROM alerts WHERE alert_id = ? AND NOT EXISTS "
            "(SELECT 1 FROM deliveries WHERE alert_id = ?)",
            (alert_id, alert_id),
        )

    def _evict_for_one_more(self, stamp: float) -> None:
        count = int(self._db.execute("SELECT COUNT(*) FROM alerts").fetchone()[0])
        excess = count - self.max_alerts + 1
        if excess <= 0:
            return
        victims = [
            r[0]
            for r in self._db.execute(
                "SELECT alert_id FROM alerts ORDER BY seq LIMIT ?", (excess,)
            ).fetchall()
        ]
        for alert_id in victims:
            sinks = [
                r[0]
                for r in self._db.execute(
                    "SELECT sink FROM deliveries WHERE alert_id = ?", (alert_id,)
                ).fetchall()
            ]
            for sink in sinks:
                self._bury(alert_id, sink, "evicted: outbox full", stamp)
            self._db.execute("DELETE FROM alerts WHERE alert_id = ?", (alert_id,))
        self.evicted += len(victims)
        _log.warning("alert outbox full (%d): evicted %d oldest alert(s)", self.max_alerts, excess)


def _create_private(path: Path) -> None:
    """Make the outbox file 0600 (and a missing directory 0700) before sqlite opens it."""
    try:
        if not path.parent.exists():
            path.parent.mkdir(mode=0o700, parents=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            mode = stat.S_IMODE(os.fstat(fd).st_mode)
            if mode & 0o077:
                os.fchmod(fd, 0o600)
                _log.warning("alert outbox %s was mode %o; now 0600", path, mode)
        finally:
            os.close(fd)
    except OSError as exc:
        raise ConfigError(f"cannot create the alert outbox {path}: {exc}") from exc


class _Transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT``, rolled back on any error."""

    __slots__ = ("_db",)

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self._db.execute("COMMIT" if exc_type is None else "ROLLBACK")
