"""A camera-side process for the crash test: queue alerts, deliver them slowly.

    python crash_worker.py OUTBOX RECEIVED IDS N

With N > 0 it stores N new alerts (their ids go to IDS once all are in the outbox)
and prints ``queued``; then, like a restart with N = 0, it delivers whatever the
outbox holds to a slow file sink and prints ``idle`` once nothing is pending.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from secfepas_sdk.alerts import AlertService
from secfepas_sdk.alerts.dispatcher import RetryPolicy
from secfepas_sdk.alerts.models import Alert, AlertKind


class SlowFileSink:
    """Appends each alert id to a file, durably; slow, so a kill lands mid-stream."""

    def __init__(self, path: Path) -> None:
        self._path = path

    @property
    def name(self) -> str:
        return "file"

    def deliver(self, alert: Alert) -> None:
        time.sleep(0.02)
        with self._path.open("a") as out:
            out.write(f"{alert.alert_id}\n")
            out.flush()
            os.fsync(out.fileno())
        time.sleep(0.02)  # delivered but not yet marked: a kill here re-delivers

    def close(self) -> None:
        return None


def main() -> None:
    outbox, received, ids, count = (
        Path(sys.argv[1]),
        Path(sys.argv[2]),
        Path(sys.argv[3]),
        int(sys.argv[4]),
    )
    retry = RetryPolicy(initial=0.05, maximum=0.2, jitter=0.0)
    service = AlertService([SlowFileSink(received)], outbox=outbox, retry=retry)
    if count:
        alerts = [
            Alert(
                kind=AlertKind.PAIN,
                camera_id="bed-1",
                level=2,
                probabilities=(0.0, 0.1, 0.8, 0.1),
                frame_time=1_700_000_000.0 + i,  # type: ignore[arg-type]
                episode_start=1_700_000_000.0,  # type: ignore[arg-type]
            )
            for i in range(count)
        ]
        for alert in alerts:
            service.publish(alert)
        ids.write_text("".join(f"{a.alert_id}\n" for a in alerts))
        print("queued", flush=True)
    if not service.wait_idle(120):
        sys.exit("outbox did not drain")
    print("idle", flush=True)
    service.close()


if __name__ == "__main__":
    main()
