"""Fixed-cadence publishing: one message of one size per tick, alert or heartbeat.

Alerts follow the assessments, so their timing tells whoever watches the alert
network (a switch, the Wi-Fi, the broker's host) when a patient was in pain,
even through TLS. With a heartbeat, the sink publishes exactly one message per
tick on the alert topic, every one padded to the same size: the alert waiting
for this tick if there is one, else a heartbeat. A network observer sees the
same TLS records at the same times either way; only the broker and the
subscribers, which hold the plaintext, tell them apart.

The cost is latency: an alert waits for the next tick, up to one period
(half a period on average).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass, field

import paho.mqtt.client as mqtt

from secfepas_sdk.errors import PermanentSinkError, TransientSinkError

__all__ = ["HEARTBEAT_SCHEMA", "FixedCadence", "pad_payload"]

HEARTBEAT_SCHEMA = "secfepas.heartbeat/1"

_log = logging.getLogger(__name__)


def pad_payload(payload: bytes, size: int) -> bytes:
    """``payload`` followed by spaces up to ``size`` bytes (still valid JSON)."""
    if len(payload) > size:
        raise PermanentSinkError(
            f"the message is {len(payload)} bytes, above pad={size}; raise pad= in the URI"
        )
    return payload + b" " * (size - len(payload))


@dataclass(slots=True)
class _Waiting:
    """One alert handed over by ``deliver``, until its tick publishes it."""

    payload: bytes
    ready: threading.Event = field(default_factory=threading.Event)
    info: mqtt.MQTTMessageInfo | None = None
    error: Exception | None = None


class FixedCadence:
    """A thread that publishes once per ``period_s`` on ``topic``, never waiting for
    an acknowledgement itself (a slow broker cannot push a tick off the grid)."""

    def __init__(
        self,
        client: mqtt.Client,
        *,
        topic: str,
        qos: int,
        period_s: float,
        size: int,
        camera_id: str,
        connected: threading.Event,
    ) -> None:
        self._client = client
        self._topic = topic
        self._qos = qos
        self.period_s = period_s
        self._size = size
        self._camera_id = camera_id
        self._connected = connected
        self._lock = threading.Lock()
        self._waiting: _Waiting | None = None
        self._stop = threading.Event()
        self.ticks = 0
        self.missed = 0
        # Checked now, so that a camera id too long for the pad fails at load time.
        self._heartbeat(0)
        self._thread = threading.Thread(target=self._run, name="secfepas-mqtt-cadence", daemon=True)
        self._thread.start()

    def _heartbeat(self, tick: int) -> bytes:
        body = {"schema": HEARTBEAT_SCHEMA, "camera_id": self._camera_id, "tick": tick}
        return pad_payload(json.dumps(body, separators=(",", ":")).encode(), self._size)

    def publish(self, payload: bytes, timeout: float) -> None:
        """Publish ``payload`` at the next tick; return once the broker acknowledged it."""
        waiting = _Waiting(pad_payload(payload, self._size))
        with self._lock:
            if self._waiting is not None:
                raise TransientSinkError("another alert is waiting for this tick")
            self._waiting = waiting
        if not waiting.ready.wait(self.period_s + timeout):
            with self._lock:
                if self._waiting is waiting:
                    self._waiting = None
            raise TransientSinkError(f"no MQTT tick within {self.period_s + timeout:.1f} s")
        if waiting.error is not None:
            raise waiting.error
        assert waiting.info is not None
        try:
            waiting.info.wait_for_publish(timeout)
        except (RuntimeError, ValueError) as exc:
            raise TransientSinkError(f"MQTT publish failed: {exc}") from exc
        if not waiting.info.is_published():
            raise TransientSinkError(f"no PUBACK within {timeout} s")

    def _run(self) -> None:
        next_tick = time.monotonic() + self.period_s
        while not self._stop.wait(max(0.0, next_tick - time.monotonic())):
            self._tick()
            next_tick += self.period_s
            behind = time.monotonic() - next_tick
            if behind > 0:  # the thread was starved: skip ticks, never burst to catch up
                skipped = int(behind // self.period_s) + 1
                self.missed += skipped
                next_tick += skipped * self.period_s

    def _tick(self) -> None:
        with self._lock:
            waiting, self._waiting = self._waiting, None
        tick = self.ticks
        self.ticks += 1
        payload = self._heartbeat(tick) if waiting is None else waiting.payload
        if not self._connected.is_set():
            if waiting is not None:
                waiting.error = TransientSinkError("not connected to the MQTT broker")
                waiting.ready.set()
            return
        try:
            info = self._client.publish(self._topic, payload, qos=self._qos)
        except (RuntimeError, ValueError) as exc:
            if waiting is None:
                _log.debug("heartbeat not sent: %s", type(exc).__name__)
                return
            waiting.error = TransientSinkError(f"MQTT publish failed: {exc}")
        else:
            if waiting is not None:
                waiting.info = info
        if waiting is not None:
            waiting.ready.set()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(self.period_s + 1.0)
