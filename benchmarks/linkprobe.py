"""Measure a :class:`linkemu.Link`: its RTT (a TCP echo of 32-byte messages) and its
throughput (one bulk TCP transfer), with the probe's two ends in the link's two
namespaces. ``calibrate`` first measures the forwarder's own round trip with no
delay added, then sets the delay to (target - base) / 2 each way, so the RTT an
application sees is the profile's.

``python linkprobe.py server|client ...`` are the two ends; :func:`measure` runs them.
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import struct
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import linkemu

PORT = 7101


@dataclass(frozen=True, slots=True, kw_only=True)
class LinkMeasure:
    """What the link achieved: RTT percentiles (ms) over ``pings`` round trips, bulk
    Mbit/s over the whole transfer (slow start included) and over its second half
    (``mbit_s_steady``: the link's rate), and the forwarder's share of a core."""

    rtt_ms_median: float
    rtt_ms_min: float
    rtt_ms_p90: float
    pings: int
    mbit_s: float
    mbit_s_steady: float
    bulk_bytes: int
    bulk_seconds: float
    forwarder_cores: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _check_host(host: str) -> str:
    if host not in linkemu.OUR_HOSTS:
        raise SystemExit(f"linkprobe: {host} is not an address of the benchmark's namespaces")
    return host


def server(host: str, port: int) -> None:
    """Echo one connection's small messages, then count one bulk connection's bytes
    and answer with (bytes, seconds from its first byte to EOF)."""
    with socket.create_server((_check_host(host), port)) as srv:
        srv.settimeout(120)
        print("ready", flush=True)
        conn, _ = srv.accept()
        with conn:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            while data := conn.recv(64):
                conn.sendall(data)
        conn, _ = srv.accept()
        with conn:
            total, first = 0, 0.0
            marks: list[tuple[float, int]] = []  # (time, bytes so far)
            buf = bytearray(1 << 20)
            while n := conn.recv_into(buf):
                now = time.perf_counter()
                first = first or now
                total += n
                marks.append((now, total))
            seconds = marks[-1][0] - first if total else 0.0
            # The second half of the transfer: past slow start, the link's own rate.
            half = next((m for m in marks if m[0] >= first + seconds / 2), (first, 0))
            steady = (total - half[1]) / (marks[-1][0] - half[0]) if total and seconds else 0.0
            conn.sendall(struct.pack("!Qdd", total, seconds, steady))


def client(host: str, port: int, pings: int, bulk_s: float) -> None:
    """``pings`` 32-byte round trips, then ``bulk_s`` seconds of bulk send; prints one
    JSON line: every RTT in ms, and the bytes and seconds the server counted."""
    rtts = []
    with socket.create_connection((_check_host(host), port), timeout=30) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for _ in range(pings):
            t0 = time.perf_counter()
            s.sendall(bytes(32))
            got = 0
            while got < 32:
                more = s.recv(64)
                if not more:
                    raise SystemExit("linkprobe: the echo server closed early")
                got += len(more)
            rtts.append((time.perf_counter() - t0) * 1e3)
    chunk = bytes(1 << 20)
    with socket.create_connection((host, port), timeout=60) as s:
        end = time.perf_counter() + bulk_s
        while time.perf_counter() < end:
            s.sendall(chunk)
        s.shutdown(socket.SHUT_WR)
        reply = b""
        while len(reply) < 24 and (more := s.recv(24 - len(reply))):
            reply += more
    total, seconds, steady = struct.unpack("!Qdd", reply)
    print(json.dumps({"rtt_ms": rtts, "bytes": total, "seconds": seconds, "steady": steady}))


def measure(link: linkemu.Link, *, pings: int = 50, bulk_s: float = 2.0) -> LinkMeasure:
    """Run the probe across ``link`` (client in ``ns_a``, server in ``ns_b``)."""
    me = [sys.executable, __file__]
    srv = subprocess.Popen(
        linkemu.netns_cmd(link.ns_b, [*me, "server", "--host", link.addr_b, "--port", str(PORT)]),
        stdout=subprocess.PIPE,
        preexec_fn=linkemu.die_with_parent,
    )
    try:
        assert srv.stdout is not None
        if srv.stdout.readline().strip() != b"ready":
            raise RuntimeError("the link probe's server did not start")
        cpu0, t0 = link.forwarder_cpu_s(), time.perf_counter()
        argv = [*me, "client", "--host", link.addr_b, "--port", str(PORT)]
        argv += ["--pings", str(pings), "--bulk-s", str(bulk_s)]
        out = subprocess.run(
            linkemu.netns_cmd(link.ns_a, argv),
            capture_output=True,
            check=True,
            timeout=120 + bulk_s,
            preexec_fn=linkemu.die_with_parent,
        ).stdout
        cores = (link.forwarder_cpu_s() - cpu0) / (time.perf_counter() - t0)
        srv.wait(30)
    finally:
        if srv.poll() is None:
            srv.kill()
            srv.wait()
    r = json.loads(out)
    rtts = sorted(r["rtt_ms"])
    return LinkMeasure(
        rtt_ms_median=statistics.median(rtts),
        rtt_ms_min=rtts[0],
        rtt_ms_p90=rtts[min(len(rtts) - 1, int(0.9 * len(rtts)))],
        pings=len(rtts),
        mbit_s=r["bytes"] * 8 / r["seconds"] / 1e6 if r["seconds"] > 0 else float("nan"),
        mbit_s_steady=r["steady"] * 8 / 1e6,
        bulk_bytes=int(r["bytes"]),
        bulk_seconds=float(r["seconds"]),
        forwarder_cores=cores,
    )


def calibrate(link: linkemu.Link, *, pings: int = 50) -> float:
    """Set the forwarder's delay so that the echo RTT is the profile's; returns the
    base RTT (ms) measured with no delay (the forwarder's and the stacks' own)."""
    target = link.shape.rtt_ms
    if target is None:
        return 0.0
    link.set_delay(0.0)
    base = measure(link, pings=pings, bulk_s=0.0).rtt_ms_median
    link.set_delay(max(0.0, target - base) / 2e3)
    return base


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="one end of the link probe (run by measure)")
    parser.add_argument("role", choices=["server", "client"])
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, default=PORT)
    parser.add_argument("--pings", type=int, default=50)
    parser.add_argument("--bulk-s", type=float, default=2.0)
    args = parser.parse_args(argv)
    if args.role == "server":
        server(args.host, args.port)
    else:
        client(args.host, args.port, args.pings, args.bulk_s)
    return 0


if __name__ == "__main__":
    sys.exit(main())
