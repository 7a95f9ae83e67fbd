"""A camera-side process for the crash tests: queue alerts, deliver them slowly.

    python crash_worker.py OUTBOX IDS N SINK

SINK is ``file:PATH`` (append alert ids to PATH) or any sink URI loaded through
its plugin (``mqtt://...``). Either way each delivery is slowed down so that a
kill lands mid-stream. With N > 0 the worker stores N new alerts (their ids go to
IDS once all are in the outbox) and prints ``queued``; then, like a restart with
N = 0, it delivers whatever the outbox holds and prints ``idle``.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from secfepas_sdk.alerts import AlertService, AlertSink, load_sinks
from secfepas_sdk.alerts.alert import Alert, AlertKind
from secfepas_sdk.retry import RetryPolicy


class FileSink:
    """Appends each alert id to a file, durably."""

    def __init__(self, path: Path) -> None:
        self._path = path

    @property
    def name(self) -> str:
        return "file"

    def deliver(self, alert: Alert) -> None:
        with self._path.open("a") as out:
            out.write(f"{alert.alert_id}\n")
            out.flush()
            os.fsync(out.fileno())

    def close(self) -> None:
        return None


class Slow:
    """Wraps a sink; waits before and after each delivery."""

    def __init__(self, inner: AlertSink) -> None:
        self._inner = inner

    @property
    def name(self) -> str:
        return self._inner.name

    def deliver(self, alert: Alert) -> None:
        time.sleep(0.02)
        self._inner.deliver(alert)
        time.sleep(0.02)  # delivered but not yet marked: a kill here re-delivers

    def close(self) -> None:
        self._inner.close()


def main() -> None:
    outbox, ids, count, target = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    if target.startswith("file:"):
        inner: AlertSink = FileSink(Path(target.removeprefix("file:")))
    else:
        (inner,) = load_sinks([target], camera_id="bed-1")
    retry = RetryPolicy(initial_s=0.05, max_s=0.2, jitter_up=0.0)
    service = AlertService([Slow(inner)], outbox=outbox, retry=retry)
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
