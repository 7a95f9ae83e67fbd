"""Alert path costs: submit() latency and outbox drain rate, to a no-op sink and to a
real mosquitto on loopback (plain listener, QoS 1 with PUBACK).

    flock /tmp/secfepas-bench.lock python benchmarks/alerts_delivery.py [--n 500]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from testkit.ports import free_port, wait_port  # noqa: E402

from secfepas_sdk.alerts import AlertService, PainAssessment, PolicyConfig, load_sinks  # noqa: E402
from secfepas_sdk.alerts.alert import Alert, AlertKind  # noqa: E402


class NullSink:
    name = "null"

    def deliver(self, alert: Alert) -> None:
        return None

    def close(self) -> None:
        return None


def _alert(i: int) -> Alert:
    return Alert(
        kind=AlertKind.PAIN,
        camera_id="bed-1",
        level=2,
        probabilities=(0.0, 0.1, 0.8, 0.1),
        frame_time=1_700_000_000.0 + i,  # type: ignore[arg-type]
        episode_start=1_700_000_000.0,  # type: ignore[arg-type]
    )


def submit_latency(workdir: Path, n: int) -> dict[str, float]:
    """Every frame fires (cool-down 0, resolve after 1): the worst case for submit()."""
    service = AlertService(
        [NullSink()], outbox=workdir / "s.db", policy=PolicyConfig(resolve_after=1, cooldown_s=0)
    )
    times = []
    for i in range(n):
        level = 2 if i % 2 == 0 else 0
        probs = [0.0] * 4
        probs[level] = 1.0
        a = PainAssessment(level=level, probabilities=tuple(probs), frame_time=1e9 + i)
        t0 = time.perf_counter()
        service.submit(a)
        times.append(time.perf_counter() - t0)
    service.wait_idle(60)
    service.close()
    times.sort()
    return {
        "submit_p50_ms": 1e3 * statistics.median(times),
        "submit_p99_ms": 1e3 * times[int(0.99 * (len(times) - 1))],
    }


def drain_rate(workdir: Path, name: str, sinks: list, n: int) -> float:  # type: ignore[type-arg]
    service = AlertService(sinks, outbox=workdir / f"{name}.db")
    t0 = time.perf_counter()
    for i in range(n):
        service.publish(_alert(i))
    if not service.wait_idle(120):
        raise SystemExit(f"{name}: outbox did not drain")
    elapsed = time.perf_counter() - t0
    service.close()
    return n / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=500)
    args = parser.parse_args()
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        result: dict[str, float] = {"n": args.n}
        result.update(submit_latency(work, args.n))
        result["drain_null_per_s"] = drain_rate(work, "null", [NullSink()], args.n)
        port = free_port()
        conf = work / "m.conf"
        user = "user root\n" if os.geteuid() == 0 else ""
        conf.write_text(f"{user}listener {port} 127.0.0.1\nallow_anonymous true\n")
        broker = subprocess.Popen([binary, "-c", str(conf)], stderr=subprocess.DEVNULL)
        try:
            wait_port(port)
            sinks = load_sinks([f"mqtt://127.0.0.1:{port}/secfepas/{{camera_id}}/alerts"])
            result["drain_mqtt_qos1_per_s"] = drain_rate(work, "mqtt", sinks, args.n)
        finally:
            broker.terminate()
            broker.wait(10)
    print(json.dumps({k: round(v, 3) for k, v in result.items()}, indent=1))


if __name__ == "__main__":
    main()
