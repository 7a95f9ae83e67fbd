"""Edge metrics in the Prometheus text format (0.0.4), served on a separate port.

Counts only: sessions, inferences, bytes, errors by code and latency. Nothing
here can carry pixels, shares, keys or results.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections import defaultdict
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from secfepas_sdk.edge.budget import PrivacyBudgets

__all__ = ["LATENCY_BUCKETS", "EdgeMetrics", "MetricsServer"]

log = logging.getLogger(__name__)


class _Counted(Protocol):
    bytes_received: int
    bytes_sent: int


LATENCY_BUCKETS: tuple[float, ...] = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)


class EdgeMetrics:
    """Counters, gauges and one latency histogram, updated on the event loop."""

    def __init__(self) -> None:
        self.sessions_active = 0
        self.sessions_queued = 0
        self.sessions_total = 0
        self.inferences: dict[str, int] = defaultdict(int)  # outcome -> count
        self.bytes: dict[str, int] = defaultdict(int)  # direction -> bytes, ended sessions
        self._live: set[_Counted] = set()
        self.errors: dict[str, int] = defaultdict(int)  # code -> count
        self.tls_refused = 0
        self.tls_revoked = 0  # of which: the camera's certificate is on the CRL
        self._bucket_counts = [0] * len(LATENCY_BUCKETS)
        self._latency_sum = 0.0
        self._latency_count = 0
        self.budgets: PrivacyBudgets | None = None  # set by the server once models load

    def track(self, conn: _Counted) -> None:
        """Count a live connection's bytes at every scrape, not only when it ends."""
        self._live.add(conn)

    def untrack(self, conn: _Counted) -> None:
        if conn in self._live:
            self._live.discard(conn)
            self.bytes["in"] += conn.bytes_received
            self.bytes["out"] += conn.bytes_sent

    def bytes_total(self, direction: str) -> int:
        live = sum(c.bytes_received if direction == "in" else c.bytes_sent for c in self._live)
        return self.bytes[direction] + live

    def observe_latency(self, seconds: float) -> None:
        for i, bound in enumerate(LATENCY_BUCKETS):
            if seconds <= bound:
                self._bucket_counts[i] += 1
        self._latency_sum += seconds
        self._latency_count += 1

    def render(self) -> str:
        lines: list[str] = []

        def metric(name: str, kind: str, help_text: str, samples: list[tuple[str, float]]) -> None:
            lines.append(f"# HELP {name} {help_text}")
            lines.append(f"# TYPE {name} {kind}")
            for labels, value in samples:
                lines.append(f"{name}{labels} {_num(value)}")

        p = "secfepas_edge_"
        metric(
            p + "sessions_active",
            "gauge",
            "Sessions holding a worker.",
            [("", self.sessions_active)],
        )
        metric(
            p + "sessions_queued",
            "gauge",
            "Cameras waiting for a session slot.",
            [("", self.sessions_queued)],
        )
        metric(
            p + "sessions_total",
            "counter",
            "Sessions admitted since start.",
            [("", self.sessions_total)],
        )
        metric(
            p + "inferences_total",
            "counter",
            "Inferences by outcome.",
            [(f'{{outcome="{k}"}}', v) for k, v in sorted(self.inferences.items())],
        )
        metric(
            p + "bytes_total",
            "counter",
            "Protocol bytes by direction.",
            [(f'{{direction="{k}"}}', v) for k, v in sorted(self.bytes.items())],
        )
        metric(
            p + "errors_total",
            "counter",
            "Session errors by code.",
            [(f'{{code="{k}"}}', v) for k, v in sorted(self.errors.items())],
        )
        metric(
            p + "tls_refused_total",
            "counter",
            "Connections refused in the TLS handshake.",
            [("", self.tls_refused)],
        )
        metric(
            p + "tls_revoked_total",
            "counter",
            "Handshakes refused because the camera's certificate is revoked (CRL).",
            [("", self.tls_revoked)],
        )
        budgets = list(self.budgets or ())
        labels = [f'{{model="{b.model_id}",version="{b.version}"}}' for b in budgets]
        metric(
            p + "model_inferences_total",
            "counter",
            "Inferences begun per loaded model in this process (failed ones included).",
            [(lab, b.used) for lab, b in zip(labels, budgets, strict=True)],
        )
        metric(
            p + "circuit_privacy_covered_inferences",
            "gauge",
            "Inferences the model's circuit-privacy budget covers (all replicas together).",
            [(lab, b.covered) for lab, b in zip(labels, budgets, strict=True)],
        )
        name = p + "inference_seconds"
        lines.append(f"# HELP {name} Wall-clock time of the edge's half of one inference.")
        lines.append(f"# TYPE {name} histogram")
        for bound, count in zip(LATENCY_BUCKETS, self._bucket_counts, strict=True):
            lines.append(f'{name}_bucket{{le="{_num(bound)}"}} {count}')
        lines.append(f'{name}_bucket{{le="+Inf"}} {self._latency_count}')
        lines.append(f"{name}_sum {_num(self._latency_sum)}")
        lines.append(f"{name}_count {self._latency_count}")
        return "\n".join(lines) + "\n"


def _num(value: float) -> str:
    if isinstance(value, int):
        return str(value)
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


class MetricsServer:
    """Minimal HTTP/1.0 endpoint: GET /metrics, GET /healthz (200 serving, 503 not)."""

    def __init__(
        self, metrics: EdgeMetrics, healthy: Callable[[], bool], host: str, port: int
    ) -> None:
        self._metrics = metrics
        self._healthy = healthy
        self._host = host
        self._port = port
        self._server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("metrics server not started")
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, self._host, self._port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(5.0):
                request = await reader.readuntil(b"\r\n\r\n")
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError):
            writer.close()
            return
        parts = request.split(b"\r\n", 1)[0].split()
        path = parts[1].decode("ascii", "replace") if len(parts) >= 2 else ""
        method = parts[0] if parts else b""
        if method != b"GET":
            status, body, ctype = "405 Method Not Allowed", "GET only\n", "text/plain"
        elif path == "/metrics":
            status, body = "200 OK", self._metrics.render()
            ctype = "text/plain; version=0.0.4; charset=utf-8"
        elif path == "/healthz":
            ok = self._healthy()
            status = "200 OK" if ok else "503 Service Unavailable"
            body, ctype = ("ok\n" if ok else "stopping\n"), "text/plain"
        else:
            status, body, ctype = "404 Not Found", "not found\n", "text/plain"
        data = body.encode("utf-8")
        head = (
            f"HTTP/1.0 {status}\r\nContent-Type: {ctype}\r\n"
            f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n"
        )
        try:
            writer.write(head.encode("ascii") + data)
            await writer.drain()
        except OSError:
            pass
        finally:
            writer.close()
