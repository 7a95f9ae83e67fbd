"""The FHIR sink plugin against a real FHIR server (fhirstarter, R4B) on loopback."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from fhir.resources.R4B.observation import Observation
from secfepas_fhir import PSPI_CODE_SYSTEM, FhirSink
from testkit.alerts import FAST_RETRY, make_alert, wait_for
from testkit.integrations import FhirServer, Pki

from secfepas_sdk.alerts import AlertService, load_sink, load_sinks
from secfepas_sdk.alerts.alert import Alert
from secfepas_sdk.errors import ConfigError, PermanentSinkError, TransientSinkError
from secfepas_sdk.retry import RetryPolicy

pytestmark = pytest.mark.integration


@pytest.fixture
def token(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("FHIR_TOKEN", "s3cret")
    return "s3cret"


def _sink(server: FhirServer, query: str = "token_env=FHIR_TOKEN") -> FhirSink:
    sink = load_sink(f"{server.uri}?{query}")
    assert isinstance(sink, FhirSink)
    return sink


def _patient_alert(ref: str) -> Alert:
    return make_alert(3).model_copy(update={"patient_ref": ref})


def test_observation_is_posted_and_validated(fhir_server: FhirServer, token: str) -> None:
    sink = _sink(fhir_server)
    alert = _patient_alert("Patient/p-1")
    sink.deliver(alert)
    (stored,) = [r for r in fhir_server.received() if str(alert.alert_id) in str(r["identifier"])]
    obs = Observation.model_validate(stored)  # what the server kept is valid R4B
    assert obs.identifier[0].system == "urn:ietf:rfc:3986"
    assert obs.identifier[0].value == f"urn:uuid:{alert.alert_id}"
    assert obs.status == "preliminary"
    assert obs.category[0].coding[0].code == "survey"
    assert obs.code.coding[0].system == PSPI_CODE_SYSTEM
    assert "loinc" not in str(stored).lower()  # PSPI is not the 0-10 NRS
    assert obs.valueCodeableConcept.coding[0].code == "class-3"
    assert obs.subject.reference == "Patient/p-1"
    assert obs.device.identifier.value == alert.camera_id
    assert stored["effectiveDateTime"].endswith(("Z", "+00:00"))
    assert [c.valueQuantity.value for c in obs.component] == list(alert.probabilities)
    sink.close()


def test_unknown_patient_alert_uses_the_camera_bed(fhir_server: FhirServer, token: str) -> None:
    sink = _sink(fhir_server)
    alert = make_alert(2, camera="bed-12")
    sink.deliver(alert)
    (stored,) = [r for r in fhir_server.received() if str(alert.alert_id) in str(r["identifier"])]
    assert stored["subject"]["type"] == "Location"
    assert stored["subject"]["identifier"]["value"] == "bed-12"
    sink.close()


def test_wrong_token_is_permanent(fhir_server: FhirServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FHIR_TOKEN", "wrong")
    sink = _sink(fhir_server)
    with pytest.raises(PermanentSinkError, match="HTTP 401"):
        sink.deliver(make_alert())
    sink.close()


def test_invalid_resource_is_rejected_by_the_server_as_permanent(
    fhir_server: FhirServer, token: str
) -> None:
    sink = _sink(fhir_server)
    # No status (1..1 in R4B) and a date that is not a FHIR dateTime.
    bad = '{"resourceType": "Observation", "code": {"text": "x"}, "effectiveDateTime": "today"}'
    with pytest.raises(PermanentSinkError, match="HTTP 400") as exc:
        sink.post_json(bad)
    assert "effectiveDateTime" in str(exc.value)  # the OperationOutcome says why
    sink.close()


def test_rejected_alert_goes_to_dead_letters(
    fhir_server: FhirServer, token: str, tmp_path: Path
) -> None:
    sinks = load_sinks([f"{fhir_server.uri}?token_env=FHIR_TOKEN", "console:"])
    with AlertService(sinks, outbox=tmp_path / "o.db", retry=FAST_RETRY) as service:
        alert = _patient_alert("Patient/nobody")
        service.publish(alert)
        assert service.wait_idle(10)
        (dead,) = service.outbox.dead_letters()
    assert dead.alert_id == str(alert.alert_id) and dead.sink == sinks[0].name
    assert "HTTP 400" in dead.reason and "unknown subject Patient/nobody" in dead.reason


@pytest.fixture
def flaky_server(tmp_path: Path) -> Iterator[FhirServer]:
    server = FhirServer(tmp_path / "flaky", fail_first=3)
    yield server
    server.stop()


def test_5xx_is_retried_until_delivered(flaky_server: FhirServer, tmp_path: Path) -> None:
    (sink,) = load_sinks([flaky_server.uri])
    with pytest.raises(TransientSinkError, match="HTTP 503"):
        sink.deliver(make_alert())
    with AlertService([sink], outbox=tmp_path / "o.db", retry=FAST_RETRY) as service:
        alerts = [make_alert() for _ in range(3)]
        for alert in alerts:
            service.publish(alert)
        assert service.wait_idle(15)
        assert service.outbox.dead_letters() == []
    assert sorted(flaky_server.received_ids()) == sorted(str(a.alert_id) for a in alerts)


def test_timeout_and_refused_connection_are_transient(tmp_path: Path) -> None:
    server = FhirServer(tmp_path / "slow", delay=1.5)
    try:
        sink = load_sink(f"{server.uri}?timeout=0.3")
        t0 = time.monotonic()
        with pytest.raises(TransientSinkError, match="timed out"):
            sink.deliver(make_alert())
        assert time.monotonic() - t0 < 1.2  # the server would answer after 1.5 s
        sink.close()
    finally:
        server.stop()
    down = load_sink(server.uri)
    with pytest.raises(TransientSinkError, match="unreachable"):
        down.deliver(make_alert())
    down.close()


def test_backlog_drains_at_once_when_the_server_is_back(tmp_path: Path) -> None:
    """The server refuses connections, then accepts: the rows it refused wait a
    minute each, yet all arrive a few seconds after it is back, each once, in order."""
    server = FhirServer(tmp_path / "outage")
    server.stop()  # nothing listens on its port: every POST is refused
    try:
        (sink,) = load_sinks([f"{server.uri}?timeout=5"])
        retry = RetryPolicy(initial_s=60.0, max_s=60.0, jitter_up=0.0)
        with AlertService([sink], outbox=tmp_path / "o.db", retry=retry) as service:
            backlog = [make_alert(i % 4, t=1_700_000_000.0 + i) for i in range(20)]
            for alert in backlog:
                service.publish(alert)
            assert wait_for(lambda: service.outbox.retrying() == 20, 30), "not all refused"
            server.start()
            up = time.monotonic()
            fresh = make_alert(3, t=1_700_000_100.0)
            service.publish(fresh)  # alerts keep firing; this one finds the server back
            assert service.wait_idle(30), "the backlog waited for its back-off (60 s)"
            drained = time.monotonic() - up
            assert service.outbox.dead_letters() == []
    finally:
        server.stop()
    assert drained < 10, f"{drained:.1f} s to drain 21 alerts"
    sent = [fresh, *backlog]
    assert server.received_ids() == [str(a.alert_id) for a in sent]  # once each, in order
    for alert, stored in zip(sent, server.received(), strict=True):
        obs = Observation.model_validate(stored)
        assert obs.valueCodeableConcept.coding[0].code == f"class-{alert.level}"
        assert obs.effectiveDateTime == alert.frame_time


def test_mutual_tls(tmp_path: Path, pki: Pki) -> None:
    server = FhirServer(tmp_path / "mtls", pki=pki)
    try:
        good = load_sink(f"{server.uri}?ca={pki.ca}&cert={pki.client_cert}&key={pki.client_key}")
        alert = make_alert()
        good.deliver(alert)
        assert server.received_ids() == [str(alert.alert_id)]
        good.close()
        no_cert = load_sink(f"{server.uri}?ca={pki.ca}")
        with pytest.raises(TransientSinkError):
            no_cert.deliver(make_alert())
        no_cert.close()
        assert len(server.received()) == 1
    finally:
        server.stop()


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("fhir+https://h/fhir?token_env=NO_SUCH_VAR_XYZ", "is not set"),
        ("fhir+https://h/fhir?bogus=1", "unknown FHIR sink parameters"),
        ("fhir+https://h/fhir?status=cancelled", "status must be"),
        ("fhir+http://ehr.example/fhir?token_env=PATH", "plain HTTP"),
        ("fhir+http://h/fhir?ca=/x.pem", "need fhir\\+https"),
        ("fhir+https://h/fhir?cert=/x.pem", "both cert= and key="),
        ("fhir+https://u:p@h/fhir", "no credentials"),
        ("fhir+https:///fhir", "bad FHIR base URL"),
        ("fhir+https://h/fhir?timeout=0", "timeout"),
    ],
)
def test_bad_uris_fail_at_load(uri: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_sink(uri)


class _EndlessErrorHandler(BaseHTTPRequestHandler):
    """A broken server: HTTP 500 with a chunked body that never ends."""

    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(500)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        chunk = b"x" * 65536
        with contextlib.suppress(OSError):  # the sink hangs up once it has read enough
            while True:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))

    def log_message(self, format: str, *args: object) -> None:
        return None


def test_an_endless_error_body_is_read_only_up_to_the_bound() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _EndlessErrorHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        sink = load_sink(f"fhir+http://127.0.0.1:{server.server_port}/fhir?timeout=5")
        start = time.monotonic()
        with pytest.raises(TransientSinkError, match="HTTP 500") as exc:
            sink.deliver(make_alert())
        assert time.monotonic() - start < 5
        assert "xxxx" in str(exc.value) and len(str(exc.value)) < 500
        sink.close()
    finally:
        server.shutdown()
        server.server_close()
