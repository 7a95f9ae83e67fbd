"""Sink plugins: selection by URI scheme through entry points, checked at load."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import pytest
from testkit.alerts import make_alert

from secfepas_sdk.alerts import AlertService, load_sink, load_sinks
from secfepas_sdk.alerts.alert import Alert
from secfepas_sdk.alerts.sinks import (
    AlertSink,
    ConsoleSink,
    available_schemes,
    redact_uri,
    uri_scheme,
)
from secfepas_sdk.errors import ConfigError, SinkPluginError

Install = Callable[..., None]

GOOD = """
class Sink:
    def __init__(self, uri, camera_id):
        self.uri, self.camera_id, self.got = uri, camera_id, []
    @property
    def name(self):
        return "good:" + self.camera_id
    def deliver(self, alert):
        self.got.append(alert)
    def close(self):
        pass

def factory(uri, context):
    return Sink(uri, context.camera_id)

NOT_CALLABLE = 42

def one_arg(uri):
    return Sink(uri, "x")

def returns_junk(uri, context):
    return object()

def nameless(uri, context):
    s = Sink(uri, "x")
    s.__class__ = type("S", (), {"name": "", "deliver": Sink.deliver, "close": Sink.close})
    return s

def refuses(uri, context):
    raise ValueError("bad port")
"""


def test_builtin_console_sink_loads_through_its_entry_point(
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    assert "console" in available_schemes()
    sink = load_sink("console:")
    assert isinstance(sink, ConsoleSink) and isinstance(sink, AlertSink)
    assert sink.name == "console:"
    alert = make_alert()
    with caplog.at_level(logging.DEBUG):
        sink.deliver(alert)
    assert Alert.from_json(capsys.readouterr().err) == alert
    assert caplog.records == []  # alerts carry results: never through logging
    to_stdout = load_sink("console:stdout")
    to_stdout.deliver(alert)
    assert Alert.from_json(capsys.readouterr().out) == alert
    assert to_stdout.name == "console:stdout"
    with pytest.raises(ConfigError):
        load_sink("console:syslog")


@pytest.mark.parametrize(
    ("uri", "scheme"),
    [
        ("console:", "console"),
        ("MQTTS://h:8883/t", "mqtts"),
        ("fhir+https://h/fhir?token_env=T", "fhir+https"),
    ],
)
def test_uri_scheme(uri: str, scheme: str) -> None:
    assert uri_scheme(uri) == scheme


@pytest.mark.parametrize("uri", ["", "nocolon", ":x", "1ab:x", "a b:x"])
def test_uri_scheme_rejects(uri: str) -> None:
    with pytest.raises(ConfigError):
        uri_scheme(uri)


def test_redact_uri_drops_secrets() -> None:
    assert (
        redact_uri("mqtts://user:pw@h:8883/a/{camera_id}?key=/k.pem#f")
        == "mqtts://h:8883/a/{camera_id}"
    )


def test_unknown_scheme_names_installed_ones() -> None:
    with pytest.raises(
        ConfigError, match=r"no alert sink plugin serves the scheme 'nope'.*console"
    ):
        load_sink("nope://x")


def test_third_party_plugin_loads_and_gets_context(fake_plugin: Install, tmp_path: Path) -> None:
    fake_plugin(GOOD, "good = fakeplug_mod:factory")
    assert "good" in available_schemes()
    (sink,) = load_sinks(["good://anything"], camera_id="bed-9")
    assert sink.name == "good:bed-9"
    with AlertService([sink], outbox=tmp_path / "o.db") as service:
        alert = make_alert()
        service.publish(alert)
        assert service.wait_idle(5.0)
    assert sink.got == [alert]  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("fakeplug_mod:NOT_CALLABLE", "is not callable"),
        ("fakeplug_mod:one_arg", r"must accept \(uri: str, context: SinkContext\)"),
        ("fakeplug_mod:returns_junk", "returned object, which lacks"),
        ("fakeplug_mod:nameless", "invalid name"),
        ("fakeplug_mod:refuses", "rejected 'bad://h': bad port"),
        ("fakeplug_mod:missing", "cannot import alert sink plugin"),
        ("no_such_module_xyz:f", "cannot import alert sink plugin"),
    ],
)
def test_bad_plugins_fail_at_load_naming_themselves(
    fake_plugin: Install, target: str, message: str
) -> None:
    fake_plugin(GOOD, f"bad = {target}")
    with pytest.raises(SinkPluginError, match=message) as exc:
        load_sink("bad://h")
    assert "fakeplug 0.1" in str(exc.value)
    assert exc.value.distribution == "fakeplug 0.1"
    assert isinstance(exc.value, ConfigError)  # callers catching ConfigError keep working


def test_two_plugins_claiming_one_scheme_is_an_error(fake_plugin: Install) -> None:
    fake_plugin(GOOD, "dup = fakeplug_mod:factory", dist="fakeplug")
    fake_plugin(GOOD, "dup = otherplug_mod:factory", dist="otherplug")
    with pytest.raises(ConfigError, match="several plugins claim the sink scheme 'dup'"):
        load_sink("dup://h")


def test_duplicate_sink_names_are_refused() -> None:
    with pytest.raises(ConfigError, match="share the name"):
        load_sinks(["console:", "console:"])


def test_plugin_authors_import_everything_from_secfepas_sdk_alerts() -> None:
    import secfepas_sdk.alerts as alerts

    for name in ("Alert", "SinkContext", "redact_uri", "SinkPluginError", "AlertService"):
        assert name in alerts.__all__
    assert not hasattr(alerts, "AlertDispatcher")  # one name for the facade
