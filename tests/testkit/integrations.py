"""Real servers for the sink tests: certificates, a mosquitto broker, an MQTT subscriber."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from secfepas_sdk.certs import init_pki
from testkit.ports import free_port, wait_port
from testkit.wait import WaitTimeout


@dataclass(frozen=True)
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca: Path


def make_pki(root: Path) -> Pki:
    """The SDK's own site PKI (``secfepas_sdk.certs``): a CA, a server certificate for
    127.0.0.1, a camera client certificate; plus an unrelated CA."""
    site = init_pki(root / "site", edge_hosts=["127.0.0.1", "localhost"], camera="bed-1")
    other = init_pki(root / "other", site="someone else's CA")
    camera = site.camera("bed-1")
    return Pki(
        ca=site.ca_cert,
        server_cert=site.edge_cert,
        server_key=site.edge_key,
        client_cert=camera.cert,
        client_key=camera.key,
        other_ca=other.ca_cert,
    )


def mosquitto_binary() -> str:
    """Debian's mosquitto; a missing broker FAILS the tests, it never skips them."""
    found = shutil.which("mosquitto") or (
        "/usr/sbin/mosquitto" if os.access("/usr/sbin/mosquitto", os.X_OK) else None
    )
    if found is None:
        pytest.fail(
            "mosquitto is not installed: the MQTT sink tests need Debian's broker. "
            "Run `bash tools/test.sh` (it installs it) or `apt-get install mosquitto`.",
            pytrace=False,
        )
    return found


class Mosquitto:
    """A real broker on free loopback ports: plain, and mutual TLS. Restartable."""

    def __init__(self, workdir: Path, pki: Pki) -> None:
        self.binary = mosquitto_binary()
        self.workdir = workdir
        self.pki = pki
        self.port = free_port()
        self.tls_port = free_port()
        self.conf = workdir / "mosquitto.conf"
        self.log = workdir / "mosquitto.log"
        (workdir / "data").mkdir(parents=True, exist_ok=True)
        lines = [
            "per_listener_settings true",
            f"persistence true\npersistence_location {workdir / 'data'}/",
            f"log_dest file {self.log}",
            "log_type error\nlog_type warning\nlog_type notice",
            f"listener {self.port} 127.0.0.1",
            "allow_anonymous true",
            f"listener {self.tls_port} 127.0.0.1",
            "allow_anonymous true",
            f"cafile {pki.ca}",
            f"certfile {pki.server_cert}",
            f"keyfile {pki.server_key}",
            "require_certificate true",
        ]
        if os.geteuid() == 0:
            # As root mosquitto drops to the `mosquitto` user, which cannot read keys
            # in pytest's private temporary directory.
            lines.insert(0, "user root")
        self.conf.write_text("\n".join(lines) + "\n")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        assert self.proc is None
        self.proc = subprocess.Popen(
            [self.binary, "-c", str(self.conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            wait_port(self.port)
            wait_port(self.tls_port)
        except WaitTimeout:
            self.stop()
            log = self.log.read_text() if self.log.exists() else ""
            pytest.fail(f"mosquitto did not start:\n{log}", pytrace=False)

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.terminate()  # SIGTERM: mosquitto saves its persistent sessions
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self.proc = None


class Subscriber:
    """Collects messages at QoS 1 on the plain listener, with a persistent session."""

    def __init__(self, port: int, topic: str, client_id: str = "nurse-station") -> None:
        self.messages: list[mqtt.MQTTMessage] = []
        self.arrivals: list[float] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self.topic = topic
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False
        )
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda *a: self._subscribed.set()
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(1, 1)
        self.client.connect("127.0.0.1", port, keepalive=10)
        self.client.loop_start()
        assert self._subscribed.wait(5), "subscriber got no SUBACK"

    def _on_connect(self, client: mqtt.Client, *args: Any) -> None:
        client.subscribe(self.topic, qos=1)

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.messages.append(msg)
            self.arrivals.append(time.time())

    def received(self) -> list[tuple[float, dict[str, Any]]]:
        """(arrival time, POSIX seconds; payload) of every JSON message, in arrival order."""
        with self._lock:
            pairs = list(zip(self.arrivals, self.messages, strict=True))
        return [(t, json.loads(m.payload)) for t, m in pairs if m.payload.startswith(b"{")]

    def payloads(self) -> list[dict[str, Any]]:
        with self._lock:
            return [json.loads(m.payload) for m in self.messages if m.payload.startswith(b"{")]

    def alert_ids(self) -> list[str]:
        return [str(p["alert_id"]) for p in self.payloads()]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class FhirServer:
    """fhirstarter's FastAPI app (fhir_server_app.py) under uvicorn in a subprocess.

    Started when built; ``stop()`` then ``start()`` restarts it on the same port,
    keeping what it had received (an EHR outage)."""

    def __init__(
        self,
        workdir: Path,
        *,
        token: str = "",
        patients: tuple[str, ...] = (),
        fail_first: int = 0,
        delay: float = 0.0,
        pki: Pki | None = None,
    ) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.received_path = workdir / "received.jsonl"
        self.received_path.touch()
        self.log = workdir / "uvicorn.log"
        self.tls = pki is not None
        scheme = "fhir+https" if self.tls else "fhir+http"
        self.uri = f"{scheme}://127.0.0.1:{self.port}/fhir"
        self._env = {
            **os.environ,
            "FHIR_SEQUENCE": "R4B",
            "TEST_FHIR_RECEIVED": str(self.received_path),
            "TEST_FHIR_TOKEN": token,
            "TEST_FHIR_PATIENTS": ",".join(patients),
            "TEST_FHIR_FAIL_FIRST": str(fail_first),
            "TEST_FHIR_DELAY": str(delay),
        }
        self._cmd = [
            sys.executable,
            "-m",
            "uvicorn",
            "fhir_server_app:root",
            "--app-dir",
            str(Path(__file__).parent),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--log-level",
            "warning",
        ]
        if pki is not None:
            self._cmd += [
                "--ssl-certfile",
                str(pki.server_cert),
                "--ssl-keyfile",
                str(pki.server_key),
                "--ssl-ca-certs",
                str(pki.ca),
                "--ssl-cert-reqs",
                "2",  # ssl.CERT_REQUIRED: mutual TLS
            ]
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        assert self.proc is None, "already running"
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                self._cmd, env=self._env, stdout=log, stderr=subprocess.STDOUT
            )
        try:
            wait_port(self.port, timeout=30)
        except WaitTimeout:
            self.stop()
            pytest.fail(f"the FHIR server did not start:\n{self.log.read_text()}", pytrace=False)

    def received(self) -> list[dict[str, Any]]:
        """What the server accepted, in order (a line still being written is left out)."""
        lines = self.received_path.read_text().split("\n")[:-1]
        return [json.loads(line) for line in lines if line.strip()]

    def received_ids(self) -> list[str]:
        return [str(r["identifier"][0]["value"]).removeprefix("urn:uuid:") for r in self.received()]

    def first_arrivals(self) -> dict[str, float]:
        """alert_id -> when the server first accepted it (its meta.lastUpdated, POSIX s)."""
        first: dict[str, float] = {}
        for r in self.received():
            alert_id = str(r["identifier"][0]["value"]).removeprefix("urn:uuid:")
            first.setdefault(alert_id, datetime.fromisoformat(r["meta"]["lastUpdated"]).timestamp())
        return first

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self.proc = None
