"""A live camera's alerts carry the wall-clock capture time, end to end.

Live source (no file clock) -> secure inference against a real edge over mutual
TLS on loopback -> alert -> a real mosquitto and a real FHIR server. The times
the nurse station and the EHR receive must be within seconds of now, not 1970.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from testkit.alerts import wait_for
from testkit.camera import demo_edge
from testkit.integrations import FhirServer, Mosquitto, Subscriber

from secfepas_sdk.alerts import AlertService
from secfepas_sdk.alerts.alert import Alert, AlertKind
from secfepas_sdk.alerts.assessment import PainAssessment
from secfepas_sdk.camera.client import SecureInferenceClient
from secfepas_sdk.camera.pipeline import CameraPipeline, PipelineConfig
from secfepas_sdk.camera.sources import PushSource
from secfepas_sdk.certs import init_pki
from secfepas_sdk.protocol.transport import TlsFiles

pytestmark = pytest.mark.integration

MODEL = "demo-pain-cnn"


def test_live_camera_alert_times_are_now_at_mqtt_and_fhir(
    tmp_path: Path,
    broker: Mosquitto,
    fhir_server: FhirServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FHIR_TOKEN", "s3cret")
    site = init_pki(tmp_path / "pki", camera="bed-live")
    camera = site.camera("bed-live")
    tls = TlsFiles(ca=site.ca_cert, cert=camera.cert, key=camera.key)
    sub = Subscriber(broker.port, "secfepas/+/alerts", client_id="nurse-live")
    alerts = AlertService.from_uris(
        [
            f"mqtt://127.0.0.1:{broker.port}/secfepas/{{camera_id}}/alerts",
            f"{fhir_server.uri}?token_env=FHIR_TOKEN",
        ],
        outbox=tmp_path / "outbox.sqlite",
        camera_id="bed-live",
    )
    published: list[Alert] = []

    def on_assessment(a: PainAssessment) -> None:
        # Whatever level the demo model gives, an alert is built exactly as the
        # policy builds it (the policy passes frame_time through; it has its own tests).
        alert = Alert.from_assessment(a, kind=AlertKind.PAIN, episode_start=a.frame_time)
        alerts.publish(alert)
        published.append(alert)

    rng = np.random.default_rng(11)
    source = PushSource(maxsize=4, source_id="bed-live")
    before = time.time()
    # No timestamps given: a live clock (seconds since the first push), no file time.
    source.push(rng.integers(0, 256, (120, 160, 3), dtype=np.uint8))
    source.end()

    async def main() -> list[PainAssessment]:
        for running in demo_edge(site, tmp_path / "edge", max_sessions=1):
            client = SecureInferenceClient(running.address, tls, MODEL)
            pipeline = CameraPipeline(
                source, client, on_assessment=on_assessment, config=PipelineConfig()
            )
            try:
                return [a async for a in pipeline.run()]
            finally:
                await client.close()
        raise AssertionError("the edge did not start")

    got = asyncio.run(main())
    assert len(got) == 1 and len(published) == 1  # the default constant-rate schedule
    assert alerts.wait_idle(20), "the alerts were not delivered"
    alerts.close()
    after = time.time()

    ids = {str(a.alert_id) for a in published}
    assert wait_for(lambda: ids <= set(sub.alert_ids()), 10)
    sub.close()
    now_window = (before, after)  # from the first push to the last delivery
    for payload in sub.payloads():
        if payload["alert_id"] in ids:
            for key in ("frame_time", "episode_start", "created_at"):
                t = datetime.fromisoformat(payload[key]).timestamp()
                assert now_window[0] <= t <= now_window[1], (key, payload[key])
    stored = [r for r in fhir_server.received() if r["identifier"][0]["value"][9:] in ids]
    assert len(stored) == 1
    for obs in stored:
        t = datetime.fromisoformat(obs["effectiveDateTime"]).timestamp()
        assert now_window[0] <= t <= now_window[1], obs["effectiveDateTime"]
