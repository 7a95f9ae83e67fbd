"""The MQTT sink plugin against a real mosquitto: plain, mutual TLS, will, outage."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode
from secfepas_mqtt.cadence import HEARTBEAT_SCHEMA
from testkit.alerts import FAST_RETRY, make_alert, wait_for
from testkit.integrations import Mosquitto, Pki, Subscriber

from secfepas_sdk.alerts import AlertService, load_sink, load_sinks
from secfepas_sdk.alerts.alert import Alert
from secfepas_sdk.errors import ConfigError, PermanentSinkError, TransientSinkError

pytestmark = pytest.mark.integration


def _tls_uri(
    broker: Mosquitto, pki: Pki, *, cert: bool = True, ca: Path | None = None, timeout: float = 3
) -> str:
    query = f"ca={ca or pki.ca}"
    if cert:
        query += f"&cert={pki.client_cert}&key={pki.client_key}"
    return f"mqtts://127.0.0.1:{broker.tls_port}/secfepas/{{camera_id}}/alerts?{query}&timeout={timeout}"


def test_plain_delivery_reaches_subscriber_at_qos1(broker: Mosquitto) -> None:
    sub = Subscriber(broker.port, "secfepas/+/alerts")
    sink = load_sink(f"mqtt://127.0.0.1:{broker.port}/secfepas/{{camera_id}}/alerts")
    alert = make_alert(camera="bed-1")
    sink.deliver(alert)  # returns once the PUBACK came back
    assert wait_for(lambda: len(sub.messages) == 1, 5)
    msg = sub.messages[0]
    assert msg.topic == "secfepas/bed-1/alerts" and msg.qos == 1
    assert Alert.from_json(msg.payload) == alert
    sink.close()
    sub.close()


def test_mutual_tls_delivery(broker: Mosquitto, pki: Pki) -> None:
    sub = Subscriber(broker.port, "secfepas/#")
    sink = load_sink(_tls_uri(broker, pki))
    assert sink.name == f"mqtts://127.0.0.1:{broker.tls_port}/secfepas/{{camera_id}}/alerts"
    alert = make_alert(camera="bed-2")
    sink.deliver(alert)
    assert wait_for(lambda: str(alert.alert_id) in sub.alert_ids(), 5)
    sink.close()
    sub.close()


def test_client_without_certificate_is_refused(broker: Mosquitto, pki: Pki) -> None:
    sink = load_sink(_tls_uri(broker, pki, cert=False, timeout=1))
    with pytest.raises(TransientSinkError, match="not connected"):
        sink.deliver(make_alert())
    sink.close()
    # And a bare paho client with only the CA is cut off before any CONNACK: wait for
    # the cut itself (a disconnect or a failed connect), not for a CONNACK not to come.
    events: list[str] = []
    ended = threading.Event()

    def on_connect(c: object, u: object, flags: object, rc: ReasonCode, p: object) -> None:
        events.append(f"connack {rc}")

    def on_end(kind: str) -> None:
        events.append(kind)
        ended.set()

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="intruder")
    client.tls_set(ca_certs=str(pki.ca))
    client.on_connect = on_connect
    client.on_disconnect = lambda *_: on_end("disconnect")
    client.on_connect_fail = lambda *_: on_end("connect failed")
    client.connect_async("127.0.0.1", broker.tls_port)
    client.loop_start()
    try:
        assert ended.wait(30), "the broker neither cut nor refused the client"
    finally:
        client.loop_stop()
    assert events[0] in ("disconnect", "connect failed"), events  # no CONNACK came first
    assert not any(e.startswith("connack") for e in events), events


def test_server_from_wrong_ca_is_refused(broker: Mosquitto, pki: Pki) -> None:
    sink = load_sink(_tls_uri(broker, pki, ca=pki.other_ca, timeout=1))
    with pytest.raises(TransientSinkError):
        sink.deliver(make_alert())
    sink.close()


def test_online_status_and_last_will(broker: Mosquitto, tmp_path: Path) -> None:
    status = Subscriber(broker.port, "secfepas/+/status", client_id="status-watch")
    code = (
        "import sys, time\n"
        "from secfepas_sdk.alerts import load_sinks\n"
        f"s = load_sinks(['mqtt://127.0.0.1:{broker.port}/a/{{camera_id}}?keepalive=5'],"
        " camera_id='bed-7')\n"
        "print('up', flush=True)\n"
        "time.sleep(60)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    assert proc.stdout is not None and proc.stdout.readline().strip() == b"up"

    def seen() -> list[bytes]:
        return [m.payload for m in status.messages if m.topic == "secfepas/bed-7/status"]

    assert wait_for(lambda: seen()[-1:] == [b"online"], 5)
    os.kill(proc.pid, signal.SIGKILL)  # no goodbye: the broker must send the will
    proc.wait(5)
    assert wait_for(lambda: seen()[-1:] == [b"offline"], 5)
    status.close()


def test_clean_close_says_offline(broker: Mosquitto) -> None:
    status = Subscriber(broker.port, "secfepas/+/status", client_id="status-watch-2")
    (sink,) = load_sinks([f"mqtt://127.0.0.1:{broker.port}/a/{{camera_id}}"], camera_id="bed-8")
    sink.deliver(make_alert(camera="bed-8"))
    sink.close()
    payloads = [m.payload for m in status.messages if m.topic == "secfepas/bed-8/status"]
    assert wait_for(
        lambda: (
            [m.payload for m in status.messages if m.topic == "secfepas/bed-8/status"]
            == [b"online", b"offline"]
        ),
        5,
    ), payloads
    status.close()


def test_broker_outage_queues_then_delivers_all(broker: Mosquitto, tmp_path: Path) -> None:
    sub = Subscriber(broker.port, "secfepas/+/alerts", client_id="outage-sub")
    broker.stop()
    uri = f"mqtt://127.0.0.1:{broker.port}/secfepas/{{camera_id}}/alerts?timeout=1&reconnect_max=1"
    service = AlertService.from_uris([uri], outbox=tmp_path / "o.db", retry=FAST_RETRY)
    alerts = [make_alert(camera="bed-3") for _ in range(25)]
    for alert in alerts:
        service.publish(alert)
    # The dispatcher tried while the broker was down, and the outbox kept the failure.
    assert wait_for(lambda: service.outbox.retrying() >= 1, 10), "no failed attempt recorded"
    assert service.outbox.pending() == 25  # queued, nothing lost, nothing sent
    assert service.outbox.dead_letters() == [] and sub.messages == []
    broker.start()
    assert service.wait_idle(30), "the outbox did not drain after the broker came back"
    expected = {str(a.alert_id) for a in alerts}
    assert wait_for(lambda: set(sub.alert_ids()) == expected, 10)
    received = sub.alert_ids()
    assert len(received) >= 25 and len(set(received)) == 25  # at least once; de-dup by id
    service.close()
    sub.close()


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("mqtt://127.0.0.1:1883/a/{patient}", "may use only"),
        ("mqtt://127.0.0.1:1883/a/%23", "wildcards"),
        ("mqtt://127.0.0.1:1883/a/#", "fragment"),
        ("mqtt://127.0.0.1:1883/a/+/b", "wildcards"),
        ("mqtt://127.0.0.1:1883/a?qos=5", "qos"),
        ("mqtt://127.0.0.1:1883/a?bogus=1", "unknown MQTT sink parameters"),
        ("mqtt://u:p@127.0.0.1:1883/a", "no credentials"),
        ("mqtt://127.0.0.1:1883/a?ca=/x.pem", "need the mqtts"),
        ("mqtts://127.0.0.1/a?ca=/no/such.pem", "not found"),
        ("mqtts://127.0.0.1/a?cert=/no/such.pem", "both cert= and key="),
        ("mqtt:///a", "needs a host"),
        ("mqtt://127.0.0.1:1883/a/{kind}?heartbeat=5", "drop {kind}"),
        ("mqtt://127.0.0.1:1883/a?heartbeat=0", "heartbeat must be"),
        ("mqtt://127.0.0.1:1883/a?heartbeat=5&pad=10", "pad must be"),
    ],
)
def test_bad_uris_fail_at_load(uri: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_sink(uri)


def test_sigkill_mid_delivery_then_restart_delivers_all_to_broker(
    broker: Mosquitto, tmp_path: Path
) -> None:
    sub = Subscriber(broker.port, "secfepas/+/alerts", client_id="crash-sub")
    worker = Path(__file__).parents[1] / "alerts" / "crash_worker.py"
    outbox, ids = tmp_path / "o.db", tmp_path / "ids.txt"
    uri = f"mqtt://127.0.0.1:{broker.port}/secfepas/{{camera_id}}/alerts"
    args = [sys.executable, str(worker), str(outbox), str(ids)]
    first = subprocess.Popen([*args, "40", uri], stdout=subprocess.PIPE, text=True)
    assert first.stdout is not None and first.stdout.readline().strip() == "queued"
    assert wait_for(lambda: len(sub.messages) >= 5, 10)
    os.kill(first.pid, signal.SIGKILL)
    assert first.wait(10) == -signal.SIGKILL
    assert len(sub.messages) < 40, "the kill must land mid-delivery"
    second = subprocess.run([*args, "0", uri], capture_output=True, text=True, timeout=60)
    assert second.returncode == 0, second.stderr
    expected = set(ids.read_text().split())
    assert len(expected) == 40
    assert wait_for(lambda: set(sub.alert_ids()) == expected, 10)
    assert len(sub.alert_ids()) - len(expected) <= 1  # only the one in flight may repeat
    sub.close()


def test_heartbeat_hides_an_alert_among_same_size_messages_one_per_tick(broker: Mosquitto) -> None:
    """With heartbeat= the topic carries one padded message per tick: an observer of the
    (TLS) traffic sees the same size at the same cadence whether or not an alert is in it."""
    sub = Subscriber(broker.port, "secfepas/+/alerts", client_id="cadence-sub")
    (sink,) = load_sinks(
        [f"mqtt://127.0.0.1:{broker.port}/secfepas/{{camera_id}}/alerts?heartbeat=0.3&pad=1024"],
        camera_id="bed-9",
    )
    assert wait_for(lambda: len(sub.messages) >= 3, 10), "no heartbeat"
    alert = make_alert(camera="bed-9")
    sink.deliver(alert)  # waits for the next tick, returns after the PUBACK
    seen = len(sub.messages)
    assert wait_for(lambda: len(sub.messages) >= seen + 3, 10)
    sink.close()
    messages = list(sub.messages)
    sub.close()
    assert {len(m.payload) for m in messages} == {1024}
    assert {(m.topic, m.qos, m.retain) for m in messages} == {("secfepas/bed-9/alerts", 1, False)}
    bodies = [json.loads(m.payload) for m in messages]
    at = [i for i, b in enumerate(bodies) if b.get("schema") != HEARTBEAT_SCHEMA]
    assert len(at) == 1 and Alert.from_json(messages[at[0]].payload) == alert  # padding is JSON
    ticks = [b["tick"] for b in bodies if b.get("schema") == HEARTBEAT_SCHEMA]
    # The alert took one tick's place: no extra message, no gap anywhere else.
    assert ticks == sorted(ticks) and len(set(ticks)) == len(ticks)
    gaps = [b - a for a, b in itertools.pairwise(ticks) if b - a != 1]
    assert gaps == [2], ticks
    assert bodies[at[0] - 1]["tick"] + 2 == bodies[at[0] + 1]["tick"]


def test_padding_alone_and_an_alert_above_the_pad(broker: Mosquitto) -> None:
    sub = Subscriber(broker.port, "secfepas/+/alerts", client_id="pad-sub")
    uri = f"mqtt://127.0.0.1:{broker.port}/secfepas/{{camera_id}}/alerts"
    padded = load_sink(uri + "?pad=512")
    padded.deliver(make_alert(camera="bed-4"))
    assert wait_for(lambda: len(sub.messages) == 1, 5)
    assert len(sub.messages[0].payload) == 512
    padded.close()
    small = load_sink(uri + "?pad=256")  # an alert is about 320 bytes of JSON
    with pytest.raises(PermanentSinkError, match="above pad=256"):
        small.deliver(make_alert(camera="bed-4"))
    small.close()
    sub.close()
