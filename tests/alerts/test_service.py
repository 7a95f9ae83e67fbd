"""AlertService.close() delivers what was just submitted before it stops."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from pathlib import Path

from testkit.alerts import RecordingSink

from secfepas_sdk.alerts import AlertService
from secfepas_sdk.alerts.alert import Alert
from secfepas_sdk.alerts.assessment import PainAssessment
from secfepas_sdk.alerts.outbox import Outbox
from secfepas_sdk.retry import RetryPolicy

# A camera process that submits a pain frame, publishes more alerts, closes at
# once and exits: without a flush most of them would wait for the next start.
_CAMERA = textwrap.dedent(
    """
    import sys, time
    from secfepas_sdk.alerts import AlertService
    from secfepas_sdk.alerts.alert import Alert, AlertKind
    from secfepas_sdk.alerts.assessment import PainAssessment

    service = AlertService.from_uris(["console:stdout"], outbox=sys.argv[1], camera_id="bed-4")
    pain = PainAssessment(
        level=3, probabilities=(0.0, 0.0, 0.1, 0.9), frame_time=time.time(), camera_id="bed-4"
    )
    ids = [service.submit(pain).alert_id]
    for _ in range(29):
        alert = Alert.from_assessment(pain, kind=AlertKind.ESCALATION, episode_start=time.time())
        service.publish(alert)
        ids.append(alert.alert_id)
    print(" ".join(map(str, ids)), file=sys.stderr)
    service.close()
    """
)


def test_close_right_after_submit_delivers_to_a_console_pipe(tmp_path: Path) -> None:
    outbox = tmp_path / "outbox.sqlite"
    proc = subprocess.run(
        [sys.executable, "-c", _CAMERA, str(outbox)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    sent = proc.stderr.splitlines()[-1].split()
    alerts = [Alert.from_json(line) for line in proc.stdout.splitlines()]
    assert sorted(str(a.alert_id) for a in alerts) == sorted(sent)  # all reached the pipe
    assert alerts[0].level == 3 and alerts[0].camera_id == "bed-4"
    box = Outbox(outbox)
    assert box.pending() == 0  # delivered, not left for the next start
    box.close()


def test_close_stops_flushing_when_the_sink_backs_off_past_the_deadline(tmp_path: Path) -> None:
    down = RecordingSink("down", fail_first=1_000)
    service = AlertService(
        [down],
        outbox=tmp_path / "outbox.sqlite",
        retry=RetryPolicy(initial_s=3600.0, max_s=3600.0, jitter_up=0.0),
    )
    service.submit(
        PainAssessment(level=3, probabilities=(0.0, 0.0, 0.1, 0.9), frame_time=1_800_000_000.0)
    )
    stuck: list[list[str]] = []
    closing = threading.Thread(target=lambda: stuck.append(service.close(timeout=600.0)))
    closing.start()
    closing.join(60)  # far below the timeout: close saw that the retry is an hour away
    assert not closing.is_alive() and stuck == [[]]
    assert down.calls == 1 and down.received == []
    box = Outbox(tmp_path / "outbox.sqlite")
    assert box.pending() == 1  # kept for the next start
    box.close()
