"""The sink plugin API: the `AlertSink` protocol and loading sinks by URI scheme.

A plugin is a distribution that registers, in the entry-point group
``secfepas_sdk.alert_sinks``, one entry point per URI scheme it serves. The entry
point names a factory ``(uri: str, context: SinkContext) -> AlertSink``. Built-in
sinks (``console:``) are registered in the same way by this package's pyproject.

A plugin is checked when it loads, not when it first delivers: the factory must be
callable with two arguments, and what it returns must satisfy :class:`AlertSink`
with a non-empty ``name``. Factories must not do network I/O: a broker that is down
at start-up only delays delivery, the outbox keeps the alerts meanwhile.
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import Protocol, runtime_checkable
from urllib.parse import urlsplit, urlunsplit

from secfepas_sdk.alerts.alert import Alert
from secfepas_sdk.errors import ConfigError, InvalidValueError, SinkPluginError

__all__ = [
    "ENTRY_POINT_GROUP",
    "AlertSink",
    "ConsoleSink",
    "SinkContext",
    "SinkFactory",
    "available_schemes",
    "console_sink_factory",
    "load_sink",
    "load_sinks",
    "redact_uri",
    "uri_scheme",
]

ENTRY_POINT_GROUP = "secfepas_sdk.alert_sinks"

_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789+-.")


@runtime_checkable
class AlertSink(Protocol):
    """Where alerts go. ``deliver`` raises TransientSinkError or PermanentSinkError.

    ``name`` must be stable across restarts: the outbox keys pending deliveries on it.
    ``deliver`` may be slow but should bound its own waiting (a timeout); it is called
    from the sink's own thread, never from the camera pipeline's.
    """

    @property
    def name(self) -> str: ...

    def deliver(self, alert: Alert) -> None: ...

    def close(self) -> None: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class SinkContext:
    """What a sink may know about the camera it serves (e.g. for an MQTT last will)."""

    camera_id: str = "camera"

    def __post_init__(self) -> None:
        if not self.camera_id or len(self.camera_id) > 128:
            raise InvalidValueError("camera_id must be 1..128 characters")


SinkFactory = Callable[[str, SinkContext], AlertSink]


def uri_scheme(uri: str) -> str:
    """The lower-case scheme of a sink URI (``fhir+https``, ``mqtts``, ``console``)."""
    scheme, sep, _ = uri.partition(":")
    scheme = scheme.lower()
    if not sep or not scheme or not set(scheme) <= _ID_CHARS or not scheme[0].isalpha():
        raise ConfigError(f"sink URI {redact_uri(uri)!r} has no valid scheme (e.g. 'console:')")
    return scheme


def redact_uri(uri: str) -> str:
    """The URI without user info, query or fragment: safe to log and to use as a name."""
    try:
        parts = urlsplit(uri)
    except ValueError:
        return "<unparsable URI>"
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def _entry_points() -> dict[str, list[EntryPoint]]:
    found: dict[str, list[EntryPoint]] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(ep.name.lower(), []).append(ep)
    return found


def available_schemes() -> list[str]:
    """The URI schemes that installed plugins serve."""
    return sorted(_entry_points())


def _distribution(ep: EntryPoint) -> str:
    dist = ep.dist
    return f"{dist.name} {dist.version}" if dist is not None else "unknown distribution"


def _origin(ep: EntryPoint) -> str:
    return f"entry point {ep.name!r} = {ep.value!r} ({_distribution(ep)})"


def _load_factory(scheme: str) -> tuple[SinkFactory, EntryPoint]:
    candidates = _entry_points().get(scheme, [])
    # The same distribution seen twice on sys.path (e.g. editable + site) is one plugin.
    distinct = {ep.value: ep for ep in candidates}
    if not distinct:
        raise ConfigError(
            f"no alert sink plugin serves the scheme {scheme!r}; installed: "
            f"{', '.join(available_schemes()) or 'none'}"
        )
    if len(distinct) > 1:
        names = "; ".join(_origin(ep) for ep in distinct.values())
        raise ConfigError(f"several plugins claim the sink scheme {scheme!r}: {names}")
    ep = next(iter(distinct.values()))
    origin, dist = _origin(ep), _distribution(ep)
    try:
        factory = ep.load()
    except Exception as exc:  # a broken plugin must say which one it is
        raise SinkPluginError(f"cannot import alert sink plugin {origin}: {exc!r}", dist) from exc
    if not callable(factory):
        raise SinkPluginError(f"alert sink plugin {origin} is not callable", dist)
    try:
        inspect.signature(factory).bind("uri", SinkContext())
    except (TypeError, ValueError) as exc:
        raise SinkPluginError(
            f"alert sink plugin {origin} must accept (uri: str, context: SinkContext)", dist
        ) from exc
    return factory, ep


def load_sink(uri: str, *, context: SinkContext | None = None) -> AlertSink:
    """Build the sink for ``uri`` through its plugin's entry point, and check it.

    A plugin that fails to import or to build its sink raises SinkPluginError
    (a ConfigError) naming its distribution.
    """
    scheme = uri_scheme(uri)
    factory, ep = _load_factory(scheme)
    origin, dist = _origin(ep), _distribution(ep)
    ctx = context if context is not None else SinkContext()
    try:
        sink = factory(uri, ctx)
    except SinkPluginError:
        raise
    except ConfigError as exc:  # the plugin refused the URI: say which plugin did
        raise SinkPluginError(str(exc), dist) from exc
    except Exception as exc:  # a plugin's own error becomes a config error naming it
        raise SinkPluginError(
            f"alert sink plugin {origin} rejected {redact_uri(uri)!r}: {exc}", dist
        ) from exc
    if not isinstance(sink, AlertSink):
        raise SinkPluginError(
            f"alert sink plugin {origin} returned {type(sink).__name__}, which lacks "
            "name/deliver(alert)/close()",
            dist,
        )
    name = sink.name
    if not isinstance(name, str) or not name or len(name) > 256:
        raise SinkPluginError(f"alert sink plugin {origin} gave an invalid name {name!r}", dist)
    return sink


def load_sinks(uris: Sequence[str], *, camera_id: str = "camera") -> list[AlertSink]:
    """Load one sink per URI; names must be unique. Closes what it built on failure."""
    context = SinkContext(camera_id=camera_id)
    sinks: list[AlertSink] = []
    try:
        for uri in uris:
            sink = load_sink(uri, context=context)
            sinks.append(sink)
            if sum(1 for s in sinks if s.name == sink.name) > 1:
                raise ConfigError(f"two sinks share the name {sink.name!r}; give distinct URIs")
    except BaseException:
        for sink in sinks:
            sink.close()
        raise
    return sinks


class ConsoleSink:
    """Writes each alert as one JSON line to standard error (``console:``) or
    standard output (``console:stdout``).

    An alert channel the operator chose (``--sink console:``), kept apart from
    logging on purpose: logs never carry results, and an alert is one.
    """

    def __init__(self, uri: str = "console:", stream: str = "stderr") -> None:
        if stream not in ("stderr", "stdout"):
            raise ConfigError(f"console sink writes to stderr or stdout, not {stream!r}")
        self._stream = stream
        self._name = "console:" if stream == "stderr" else f"console:{stream}"
        self.uri = uri

    @property
    def name(self) -> str:
        return self._name

    def deliver(self, alert: Alert) -> None:
        # Looked up on each call, so a redirected sys.stderr/stdout is honoured.
        out = sys.stderr if self._stream == "stderr" else sys.stdout
        out.write(alert.to_json() + "\n")
        out.flush()

    def close(self) -> None:
        return None


def console_sink_factory(uri: str, context: SinkContext) -> ConsoleSink:
    """``console:`` (stderr) or ``console:stdout``: the built-in sink, loaded like any plugin."""
    del context
    return ConsoleSink(uri, uri.partition(":")[2].strip("/") or "stderr")
