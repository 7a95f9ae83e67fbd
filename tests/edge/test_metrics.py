"""Prometheus text exposition and the health endpoint over a real loopback socket."""

from __future__ import annotations

import asyncio

from secfepas_sdk.edge.metrics import EdgeMetrics, MetricsServer


def test_render_counts_and_histogram() -> None:
    m = EdgeMetrics()
    m.sessions_active = 2
    m.inferences["ok"] += 3
    m.errors["busy"] += 1
    m.bytes["in"] += 1000
    m.bytes["out"] += 5
    for seconds in (0.2, 3.0, 400.0):
        m.observe_latency(seconds)
    text = m.render()
    assert "secfepas_edge_sessions_active 2\n" in text
    assert 'secfepas_edge_inferences_total{outcome="ok"} 3\n' in text
    assert 'secfepas_edge_errors_total{code="busy"} 1\n' in text
    assert 'secfepas_edge_bytes_total{direction="in"} 1000\n' in text
    assert 'secfepas_edge_inference_seconds_bucket{le="0.25"} 1\n' in text
    assert 'secfepas_edge_inference_seconds_bucket{le="5.0"} 2\n' in text
    assert 'secfepas_edge_inference_seconds_bucket{le="300.0"} 2\n' in text
    assert 'secfepas_edge_inference_seconds_bucket{le="+Inf"} 3\n' in text
    assert "secfepas_edge_inference_seconds_count 3\n" in text
    for line in text.splitlines():  # every sample line is "name{labels} number"
        if not line.startswith("#"):
            float(line.rsplit(" ", 1)[1])


async def _get(port: int, path: str) -> tuple[str, str]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    await writer.drain()
    data = (await reader.read()).decode()
    writer.close()
    head, _, body = data.partition("\r\n\r\n")
    return head.split("\r\n")[0], body


def test_http_endpoints() -> None:
    healthy = [True]

    async def main() -> None:
        m = EdgeMetrics()
        m.tls_refused = 4
        server = MetricsServer(m, lambda: healthy[0], "127.0.0.1", 0)
        await server.start()
        try:
            status, body = await _get(server.port, "/metrics")
            assert status.endswith("200 OK")
            assert "secfepas_edge_tls_refused_total 4" in body
            assert (await _get(server.port, "/healthz"))[0].endswith("200 OK")
            healthy[0] = False
            assert (await _get(server.port, "/healthz"))[0].endswith("503 Service Unavailable")
            assert (await _get(server.port, "/nope"))[0].endswith("404 Not Found")
        finally:
            await server.stop()

    asyncio.run(main())
