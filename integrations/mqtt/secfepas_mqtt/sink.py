"""Publish alerts to an MQTT broker with paho-mqtt 2.x at QoS 1, waiting for the PUBACK.

The client connects in the background (``connect_async`` + ``loop_start``) so that
building the sink never blocks; paho reconnects on its own. ``deliver`` fails with
a transient error while the broker is unreachable, and the outbox retries later.
"""

from __future__ import annotations

import contextlib
import math
import os
import ssl
import string
import threading
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from secfepas_mqtt.cadence import FixedCadence, pad_payload
from secfepas_sdk.alerts import Alert, SinkContext, redact_uri
from secfepas_sdk.errors import ConfigError, PermanentSinkError, TransientSinkError

__all__ = ["MqttSink", "MqttSinkConfig", "mqtt_sink_factory", "parse_mqtt_uri"]

_FIELDS = frozenset({"camera_id", "kind"})
_QUERY = frozenset(
    {
        "ca",
        "cert",
        "key",
        "client_id",
        "username",
        "password_env",
        "qos",
        "timeout",
        "keepalive",
        "reconnect_max",
        "status_topic",
        "heartbeat",
        "pad",
    }
)
DEFAULT_TOPIC = "secfepas/{camera_id}/alerts"
DEFAULT_STATUS_TOPIC = "secfepas/{camera_id}/status"
DEFAULT_PAD = 1024  # an alert is about 320 bytes of JSON


def _check_template(template: str, what: str) -> None:
    try:
        names = {f for _, f, spec, conv in string.Formatter().parse(template) if f is not None}
    except ValueError as exc:
        raise ConfigError(f"bad MQTT {what} template {template!r}: {exc}") from exc
    if not names <= _FIELDS:
        raise ConfigError(
            f"MQTT {what} template may use only {sorted(_FIELDS)}, got {sorted(names)}"
        )
    if "#" in template or "+" in template:
        raise ConfigError(f"MQTT {what} template must not contain wildcards: {template!r}")


def _fill(template: str, **values: str) -> str:
    for value in values.values():
        if not value or any(c in value for c in "/+#\x00"):
            raise PermanentSinkError(f"value {value!r} cannot go into an MQTT topic")
    return template.format(**values)


@dataclass(frozen=True, slots=True, kw_only=True)
class MqttSinkConfig:
    """Everything the URI says; validated so that a bad URI fails at load time."""

    host: str
    port: int
    tls: bool
    topic: str = DEFAULT_TOPIC
    status_topic: str = DEFAULT_STATUS_TOPIC
    ca: str | None = None
    cert: str | None = None
    key: str | None = None
    client_id: str = ""
    username: str | None = None
    password_env: str | None = None
    qos: int = 1
    timeout: float = 5.0
    keepalive: int = 30
    reconnect_max: int = 30
    heartbeat: float | None = None
    """Seconds between ticks: one padded message per tick, alert or heartbeat."""
    pad: int | None = None
    """Bytes every payload is padded to (default 1024 with a heartbeat)."""

    def __post_init__(self) -> None:
        if not self.host:
            raise ConfigError("MQTT sink URI needs a host")
        if not 0 < self.port < 65536:
            raise ConfigError(f"bad MQTT port {self.port}")
        if self.qos not in (0, 1, 2):
            raise ConfigError(f"qos must be 0, 1 or 2, got {self.qos}")
        if not (math.isfinite(self.timeout) and 0 < self.timeout <= 300):
            raise ConfigError(f"timeout must be within (0, 300] s, got {self.timeout}")
        if not 5 <= self.keepalive <= 3600 or not 1 <= self.reconnect_max <= 3600:
            raise ConfigError("keepalive must be 5..3600 s and reconnect_max 1..3600 s")
        if (self.cert is None) != (self.key is None):
            raise ConfigError("mutual TLS needs both cert= and key=")
        if not self.tls and (self.ca or self.cert):
            raise ConfigError("ca=/cert=/key= need the mqtts:// scheme")
        for path in (self.ca, self.cert, self.key):
            if path is not None and not os.path.isfile(path):
                raise ConfigError(f"MQTT TLS file not found: {path}")
        if self.heartbeat is not None:
            if not (math.isfinite(self.heartbeat) and 0.1 <= self.heartbeat <= 3600):
                raise ConfigError(f"heartbeat must be within [0.1, 3600] s, got {self.heartbeat}")
            if "{kind}" in self.topic:
                raise ConfigError(
                    "with a heartbeat every message goes to one topic: drop {kind} from it"
                )
        if self.pad is not None and not 256 <= self.pad <= 65536:
            raise ConfigError(f"pad must be within [256, 65536] bytes, got {self.pad}")
        _check_template(self.topic, "topic")
        if self.status_topic:
            _check_template(self.status_topic, "status topic")
            if "{kind}" in self.status_topic:
                raise ConfigError("the status topic may use only {camera_id}")


def _one(query: dict[str, list[str]], key: str) -> str | None:
    values = query.get(key)
    if values is None:
        return None
    if len(values) != 1:
        raise ConfigError(f"MQTT sink URI repeats {key}=")
    return values[0]


def _number(query: dict[str, list[str]], key: str, default: float) -> float:
    raw = _one(query, key)
    if raw is None:
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise ConfigError(f"MQTT sink URI: {key}={raw!r} is not a number") from exc


def parse_mqtt_uri(uri: str) -> MqttSinkConfig:
    """``mqtt[s]://host[:port]/topic/{camera_id}?ca=..&cert=..&key=..`` -> config."""
    try:
        parts = urlsplit(uri)
        port = parts.port
    except ValueError as exc:
        raise ConfigError(f"bad MQTT sink URI {redact_uri(uri)!r}: {exc}") from exc
    scheme = parts.scheme.lower()
    if scheme not in ("mqtt", "mqtts"):
        raise ConfigError(f"not an MQTT URI: {redact_uri(uri)!r}")
    if parts.fragment or uri.endswith("#"):
        raise ConfigError("MQTT sink URI has a fragment; write a '#' in a topic as %23")
    if parts.username or parts.password:
        raise ConfigError("put no credentials in the URI; use username= and password_env=")
    query = parse_qs(parts.query, keep_blank_values=True, strict_parsing=False)
    unknown = set(query) - _QUERY
    if unknown:
        raise ConfigError(f"unknown MQTT sink parameters: {sorted(unknown)}")
    tls = scheme == "mqtts"
    topic = unquote(parts.path.lstrip("/")) or DEFAULT_TOPIC
    status = _one(query, "status_topic")
    return MqttSinkConfig(
        host=parts.hostname or "",
        port=port if port is not None else (8883 if tls else 1883),
        tls=tls,
        topic=topic,
        status_topic=DEFAULT_STATUS_TOPIC if status is None else status,
        ca=_one(query, "ca"),
        cert=_one(query, "cert"),
        key=_one(query, "key"),
        client_id=_one(query, "client_id") or "",
        username=_one(query, "username"),
        password_env=_one(query, "password_env"),
        qos=int(_number(query, "qos", 1)),
        timeout=_number(query, "timeout", 5.0),
        keepalive=int(_number(query, "keepalive", 30)),
        reconnect_max=int(_number(query, "reconnect_max", 30)),
        heartbeat=None if _one(query, "heartbeat") is None else _number(query, "heartbeat", 0),
        pad=None if _one(query, "pad") is None else int(_number(query, "pad", 0)),
    )


class MqttSink:
    """One long-lived MQTT connection per sink; ``deliver`` is called from one thread."""

    def __init__(self, config: MqttSinkConfig, context: SinkContext) -> None:
        self.config = config
        self._camera_id = context.camera_id
        self._name = (
            f"{'mqtts' if config.tls else 'mqtt'}://{config.host}:{config.port}/{config.topic}"
        )
        self._status = (
            _fill(config.status_topic, camera_id=context.camera_id) if config.status_topic else ""
        )
        self._connected = threading.Event()
        client_id = config.client_id or f"secfepas-{context.camera_id}-{os.urandom(4).hex()}"
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id)
        if config.username is not None:
            password = os.environ.get(config.password_env) if config.password_env else None
            if config.password_env and password is None:
                raise ConfigError(f"environment variable {config.password_env} is not set")
            self._client.username_pw_set(config.username, password)
        if config.tls:
            self._client.tls_set(
                ca_certs=config.ca,
                certfile=config.cert,
                keyfile=config.key,
                cert_reqs=ssl.CERT_REQUIRED,
                tls_version=ssl.PROTOCOL_TLS_CLIENT,
            )
        if self._status:
            self._client.will_set(self._status, b"offline", qos=1, retain=True)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.reconnect_delay_set(min_delay=1, max_delay=config.reconnect_max)
        # Bound paho's own queue: while the link is down the outbox holds the alerts.
        self._client.max_queued_messages_set(1000)
        self._pad = config.pad or (DEFAULT_PAD if config.heartbeat is not None else None)
        self._cadence: FixedCadence | None = None
        if config.heartbeat is not None:
            assert self._pad is not None
            self._cadence = FixedCadence(
                self._client,
                topic=_fill(config.topic, camera_id=context.camera_id),
                qos=config.qos,
                period_s=config.heartbeat,
                size=self._pad,
                camera_id=context.camera_id,
                connected=self._connected,
            )
        self._client.connect_async(config.host, config.port, keepalive=config.keepalive)
        self._client.loop_start()

    @property
    def name(self) -> str:
        return self._name

    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any
    ) -> None:
        if reason.is_failure:
            return
        if self._status:
            client.publish(self._status, b"online", qos=1, retain=True)
        self._connected.set()

    def _on_disconnect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any
    ) -> None:
        self._connected.clear()

    def deliver(self, alert: Alert) -> None:
        """Publish the alert as JSON; return only once the broker acknowledged it."""
        cfg = self.config
        topic = _fill(cfg.topic, camera_id=alert.camera_id, kind=alert.kind.value)
        if not self._connected.wait(cfg.timeout):
            raise TransientSinkError(f"not connected to MQTT broker {cfg.host}:{cfg.port}")
        payload = alert.to_json().encode()
        if self._cadence is not None:
            if alert.camera_id != self._camera_id:
                raise PermanentSinkError(
                    "with a heartbeat a sink publishes for its own camera only, "
                    f"not for {alert.camera_id!r}"
                )
            self._cadence.publish(payload, cfg.timeout)
            return
        if self._pad is not None:
            payload = pad_payload(payload, self._pad)
        info = self._client.publish(topic, payload, qos=cfg.qos)
        try:
            info.wait_for_publish(cfg.timeout)
        except (RuntimeError, ValueError) as exc:
            raise TransientSinkError(f"MQTT publish failed: {exc}") from exc
        if not info.is_published():
            raise TransientSinkError(f"no PUBACK from {cfg.host}:{cfg.port} in {cfg.timeout} s")

    def close(self) -> None:
        """Say ``offline`` (a clean disconnect does not fire the will), then stop."""
        if self._cadence is not None:
            self._cadence.close()
        if self._status and self._connected.is_set():
            info = self._client.publish(self._status, b"offline", qos=1, retain=True)
            # If the goodbye fails, the broker's last will says it instead.
            with contextlib.suppress(RuntimeError, ValueError):
                info.wait_for_publish(min(self.config.timeout, 2.0))
        self._client.disconnect()
        self._client.loop_stop()


def mqtt_sink_factory(uri: str, context: SinkContext) -> MqttSink:
    """Entry point for the ``mqtt`` and ``mqtts`` schemes."""
    return MqttSink(parse_mqtt_uri(uri), context)
