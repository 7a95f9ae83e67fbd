"""Two edge replicas behind the real HAProxy of deploy/haproxy/haproxy.cfg, on loopback.

The edges are `secfepas edge serve` processes reading an edge.toml each (as the
systemd unit runs them), serving one shared read-only model directory with one
edge certificate issued for the balancer's name. Four cameras run secure
inference through HAProxy; one replica is SIGKILLed while it holds sessions.
Every frame is analysed, or counted as failed and retried on a new session
that HAProxy sends to the survivor. HAProxy's own view (runtime API, ``show
servers state``) must turn the dead replica down, and up again after a restart,
after which a new camera is served by the restarted replica.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from testkit.edgeproc import Edge, metric
from testkit.ports import free_port
from testkit.wait import wait_until

from secfepas_sdk.camera.client import SecureInferenceClient
from secfepas_sdk.certs import Pki, init_pki, issue_camera
from secfepas_sdk.errors import ConnectionLostError, PeerError, ProtocolError, SessionError
from secfepas_sdk.models.bundled import demo_model_dir
from secfepas_sdk.protocol.transport import TlsFiles
from secfepas_sdk.retry import RetryPolicy

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "deploy" / "haproxy" / "haproxy.cfg"
HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"
MODEL = "demo-pain-cnn"
LB_NAME = "edge.test"  # the name cameras dial; the edge certificate's only SAN
CAMERAS = 4
FRAMES = 2  # per camera
RECONNECT = RetryPolicy(initial_s=0.2, max_s=2.0, jitter_down=0.2, jitter_up=0.2, attempts=8)
SERVER_UP, SERVER_DOWN = 2, 0  # HAProxy's srv_op_state: SRV_ST_RUNNING, SRV_ST_STOPPED


class Balancer:
    """HAProxy in the foreground with the deploy config and loopback addresses."""

    def __init__(self, workdir: Path, edges: list[Edge]) -> None:
        self.port = free_port()
        self.socket = workdir / "haproxy.sock"
        env = {
            **os.environ,
            "SECFEPAS_LB_BIND": f"127.0.0.1:{self.port}",
            "SECFEPAS_LB_STATS_SOCKET": str(self.socket),
        }
        for i, edge in enumerate(edges, 1):
            env[f"SECFEPAS_EDGE{i}_ADDR"] = f"127.0.0.1:{edge.port}"
            env[f"SECFEPAS_EDGE{i}_HEALTH_PORT"] = str(edge.health_port)
        self.log = workdir / "haproxy.log"
        self.proc = subprocess.Popen(
            [HAPROXY, "-db", "-f", str(CONFIG)],
            env=env,
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
        )

    def command(self, line: str) -> str:
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(5)
            s.connect(str(self.socket))
            s.sendall(line.encode() + b"\n")
            chunks = []
            while chunk := s.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks).decode()

    def states(self) -> dict[str, int]:
        """srv_name -> srv_op_state, from the runtime API's `show servers state`."""
        if self.proc.poll() is not None or not self.socket.exists():
            return {}
        lines = self.command("show servers state edges").splitlines()
        header = next(line for line in lines if line.startswith("# be_id")).split()[1:]
        out = {}
        for line in lines:
            if line and not line.startswith("#") and len(line.split()) == len(header):
                row = dict(zip(header, line.split(), strict=True))
                out[row["srv_name"]] = int(row["srv_op_state"])
        return out

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture
def site(tmp_path: Path) -> Iterator[tuple[Pki, list[Edge], Balancer]]:
    pki = init_pki(tmp_path / "pki", edge_hosts=[LB_NAME])
    for i in range(2, CAMERAS + 2):
        issue_camera(pki.root, f"camera-{i}")
    models = demo_model_dir(tmp_path / "models")  # one read-only store for both replicas
    edges = [Edge(f"edge{i}", tmp_path, pki, models) for i in (1, 2)]
    balancer: Balancer | None = None
    try:
        for edge in edges:
            edge.launch()  # both start at once
        for edge in edges:
            edge.wait_healthy()
        balancer = Balancer(tmp_path, edges)
        wait_until(
            lambda: (
                balancer is not None
                and balancer.states() == {"edge1": SERVER_UP, "edge2": SERVER_UP}
            ),
            30,
            what="HAProxy to see both replicas up",
        )
        yield pki, edges, balancer
    finally:
        if balancer is not None:
            balancer.close()
        for edge in edges:
            edge.cleanup()


@dataclass
class Tally:
    ok: int = 0
    failed: int = 0
    frames: dict[str, list[int]] = field(default_factory=dict)


async def camera(
    name: str, pki: Pki, port: int, x: np.ndarray, tally: Tally, frames: int = FRAMES
) -> None:
    files = pki.camera(name)
    tls = TlsFiles(ca=pki.ca_cert, cert=files.cert, key=files.key)
    client = SecureInferenceClient(
        ("127.0.0.1", port), tls, MODEL, server_name=LB_NAME, retry=RECONNECT
    )
    done = tally.frames.setdefault(name, [])
    try:
        for frame in range(frames):
            for _attempt in range(6):  # a failed frame is counted, then retried
                try:
                    await client.infer(x, frame_index=frame)
                except (ConnectionLostError, PeerError, ProtocolError, SessionError):
                    tally.failed += 1
                    continue
                tally.ok += 1
                done.append(frame)
                break
    finally:
        await client.close()


def test_failover_through_haproxy(site: tuple[Pki, list[Edge], Balancer]) -> None:
    pki, (victim, survivor), balancer = site
    x = np.random.default_rng(3).standard_normal((1, 3, 64, 64)).astype(np.float32)
    tally = Tally()

    async def run() -> None:
        names = [f"camera-{i}" for i in range(1, CAMERAS + 1)]
        tasks = [asyncio.ensure_future(camera(n, pki, balancer.port, x, tally)) for n in names]
        # Kill the victim while it holds sessions and has finished an inference.
        busy = lambda: (  # noqa: E731
            metric(victim.health_port, "secfepas_edge_sessions_active") >= 1
            and metric(victim.health_port, 'secfepas_edge_inferences_total{outcome="ok"}') >= 1
        )
        await asyncio.to_thread(wait_until, busy, 120, what="the victim to serve cameras")
        assert not all(t.done() for t in tasks)
        victim.kill()
        await asyncio.to_thread(
            wait_until,
            lambda: balancer.states()["edge1"] == SERVER_DOWN,
            30,
            what="HAProxy to mark edge1 down",
        )
        assert balancer.states()["edge2"] == SERVER_UP
        # The dead replica's session workers and model host do not outlive it.
        await asyncio.to_thread(
            wait_until, lambda: not victim.group_alive(), 30, what="edge1's workers to exit"
        )
        async with asyncio.timeout(240):
            await asyncio.gather(*tasks)

    asyncio.run(run())
    # Every frame of every camera was analysed exactly once in the end, in order.
    assert tally.frames == {f"camera-{i}": list(range(FRAMES)) for i in range(1, CAMERAS + 1)}
    assert tally.ok == CAMERAS * FRAMES
    assert tally.failed >= 1  # the victim's cameras lost their sessions mid-run
    # The survivor served the rest; its ok count covers every frame the victim did not.
    served = metric(survivor.health_port, 'secfepas_edge_inferences_total{outcome="ok"}')
    assert 0 < served < CAMERAS * FRAMES

    # Restart the killed replica on the same ports: HAProxy brings it back up,
    # and with leastconn a new camera lands on it (the survivor is idle too, so
    # hold one session on the survivor first).
    victim.start()
    wait_until(lambda: balancer.states()["edge1"] == SERVER_UP, 30, what="HAProxy to mark edge1 up")

    async def after_restart() -> None:
        files = pki.camera("camera-5")
        tls = TlsFiles(ca=pki.ca_cert, cert=files.cert, key=files.key)
        holder = SecureInferenceClient(
            ("127.0.0.1", balancer.port), tls, MODEL, server_name=LB_NAME, retry=RECONNECT
        )
        await holder.connect()
        try:
            active = "secfepas_edge_sessions_active"
            held = [e for e in (victim, survivor) if metric(e.health_port, active) >= 1]
            assert len(held) == 1
            other = survivor if held[0] is victim else victim
            ok = 'secfepas_edge_inferences_total{outcome="ok"}'
            before = metric(other.health_port, ok)
            late = Tally()
            await camera("camera-1", pki, balancer.port, x, late, frames=1)
            assert late.ok == 1 and late.failed == 0
            assert metric(other.health_port, ok) == before + 1
        finally:
            await holder.close()

    asyncio.run(after_restart())
