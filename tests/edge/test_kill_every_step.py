"""Cut the camera's connection at every step of the protocol's transition table.

Where the cut happens: inside the camera, by a hook on its FramedStream (and,
for the SNNI steps, on its ThreadChannel), which aborts the real TCP socket
(``transport.abort()``: the edge's kernel gets a reset) at the chosen step and
makes the camera see what a reset there looks like. A proxy in the middle
could only count TLS records, which do not map one to one onto protocol
frames; the hook knows the frame type and the SNNI op kind exactly, and the cut
is still one of a real socket between two processes (the edge is a
`secfepas edge serve` process). Steps: the hello in both directions
(handshake), right after InferenceBegin, the first SNNI message of each op
kind that moves traffic, and InferenceEnd arriving (the edge has finished, the
camera never learns the result). After each cut the edge counts a coded error,
its session count returns to zero and it keeps no session worker; the camera
gets a coded error, reconnects with back-off and the retried frame succeeds.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from testkit.edgeproc import Edge, http_get, metric
from testkit.wait import wait_until

from secfepas_sdk.camera.client import SecureInferenceClient
from secfepas_sdk.certs import Pki, init_pki
from secfepas_sdk.errors import ConnectionLostError, ErrorCode, RemoteProtocolError, SecfepasError
from secfepas_sdk.models.bundled import demo_model_dir
from secfepas_sdk.protocol.events import ClientHello, InferenceBegin, InferenceEnd, ServerHello
from secfepas_sdk.protocol.transport import FramedStream, ThreadChannel, TlsFiles
from secfepas_sdk.retry import RetryPolicy

pytestmark = pytest.mark.integration

MODEL = "demo-pain-cnn"
BACK_OFF = RetryPolicy(initial_s=0.1, max_s=1.0, jitter_down=0.2, jitter_up=0.2, attempts=5)
# Op kinds of the demo plan that move traffic (global_avgpool and reshape are local).
SNNI_KINDS = ("conv", "maxpool", "relu_truncate", "truncate", "gemm")
CUT_CODES = (ErrorCode.CONNECTION_LOST, ErrorCode.UNEXPECTED_EOF, ErrorCode.INFERENCE_FAILED)
HANDSHAKE = ("send ClientHello", "receive ServerHello")
STEPS = (
    "send ClientHello",
    "receive ServerHello",
    "send InferenceBegin",
    *(f"snni {kind}" for kind in SNNI_KINDS),
    "receive InferenceEnd",
)


class Cutter:
    """Arms one cut; the camera's stream and channel consult it at each step."""

    def __init__(self) -> None:
        self.step: str | None = None
        self.fired = False

    def hit(self, step: str) -> bool:
        if self.step == step and not self.fired:
            self.fired = True
            return True
        return False


def _cut(stream: FramedStream, where: str) -> ConnectionLostError:
    stream.abort()  # a real reset of the real socket
    return ConnectionLostError(f"connection cut at {where}", ErrorCode.CONNECTION_LOST)


@pytest.fixture
def cutter(monkeypatch: pytest.MonkeyPatch) -> Cutter:
    """Patch the camera side only: the edge is another process."""
    cut = Cutter()
    send, next_event = FramedStream.send, FramedStream.next_event
    send_message, recv_message = ThreadChannel._send_message, ThreadChannel._recv_message
    sent = {ClientHello: "send ClientHello", InferenceBegin: "send InferenceBegin"}
    received = {ServerHello: "receive ServerHello", InferenceEnd: "receive InferenceEnd"}

    async def patched_send(self: FramedStream, *events: Any) -> None:
        for event in events:
            step = sent.get(type(event))
            if step == "send ClientHello" and cut.hit(step):
                raise _cut(self, step)  # the hello never leaves
        await send(self, *events)
        for event in events:
            step = sent.get(type(event))
            if step == "send InferenceBegin" and cut.hit(step):
                raise _cut(self, step)  # the edge has the Begin, then the line dies

    async def patched_next_event(self: FramedStream, *args: Any, **kwargs: Any) -> Any:
        event = await next_event(self, *args, **kwargs)
        step = received.get(type(event))
        if step is not None and cut.hit(step):
            raise _cut(self, step)
        return event

    def snni_hook(chan: ThreadChannel) -> None:
        kinds = chan._label.split("/")
        for kind in SNNI_KINDS:
            if kind in kinds and cut.hit(f"snni {kind}"):
                stream = chan._sender.__self__  # type: ignore[attr-defined]
                chan._loop.call_soon_threadsafe(stream.abort)

    def patched_send_message(self: ThreadChannel, payload: bytes) -> None:
        snni_hook(self)
        send_message(self, payload)

    def patched_recv_message(self: ThreadChannel, max_bytes: int) -> bytes:
        snni_hook(self)
        return recv_message(self, max_bytes)

    monkeypatch.setattr(FramedStream, "send", patched_send)
    monkeypatch.setattr(FramedStream, "next_event", patched_next_event)
    monkeypatch.setattr(ThreadChannel, "_send_message", patched_send_message)
    monkeypatch.setattr(ThreadChannel, "_recv_message", patched_recv_message)
    return cut


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Pki, Edge]]:
    root = tmp_path_factory.mktemp("kill")
    pki = init_pki(root / "pki")
    server = Edge("edge", root, pki, demo_model_dir(root / "models"))
    try:
        server.start()
        yield pki, server
    finally:
        server.cleanup()


def errors_total(port: int) -> float:

    _, text = http_get(port, "/metrics")
    return sum(
        float(line.split()[1])
        for line in text.splitlines()
        if line.startswith("secfepas_edge_errors_total{")
    )


@pytest.mark.parametrize("step", STEPS)
def test_cut_at_step(step: str, edge: tuple[Pki, Edge], cutter: Cutter) -> None:
    pki, server = edge
    port = server.health_port
    wait_until(
        lambda: metric(port, "secfepas_edge_sessions_active") == 0, 60, what="no session left"
    )
    workers_idle = server.descendants()
    errors_before = errors_total(port)
    files = pki.camera("camera-1")
    tls = TlsFiles(ca=pki.ca_cert, cert=files.cert, key=files.key)
    x = np.random.default_rng(1).standard_normal((1, 3, 64, 64)).astype(np.float32)

    async def run() -> SecfepasError | None:
        client = SecureInferenceClient(
            ("127.0.0.1", server.port), tls, MODEL, server_name="localhost", retry=BACK_OFF
        )
        cutter.step = step
        error: SecfepasError | None = None
        try:
            if step in HANDSHAKE:  # connect() itself retries with back-off
                result = await client.infer(x)
            else:
                with pytest.raises(SecfepasError) as failure:
                    await client.infer(x)
                error = failure.value
                result = await client.infer(x)  # reconnects (with back-off) and succeeds
            assert cutter.fired
            assert result.model_id == MODEL and sum(result.probabilities) == pytest.approx(1.0)
            return error
        finally:
            await client.close()

    error = asyncio.run(run())
    if step not in HANDSHAKE:
        # Our own abort reads as a reset (connection_lost) or as an EOF mid-frame.
        assert isinstance(error, (ConnectionLostError, RemoteProtocolError)), f"{step}: {error!r}"
        assert error.code in CUT_CODES, f"{step}: {error!r}"
    # The edge coded the cut session's end, and holds no session and no extra worker.
    wait_until(
        lambda: errors_total(port) > errors_before, 60, what=f"{step}: the edge to count an error"
    )
    wait_until(
        lambda: metric(port, "secfepas_edge_sessions_active") == 0,
        60,
        what=f"{step}: sessions to drain",
    )
    wait_until(lambda: server.descendants() <= workers_idle, 30, what=f"{step}: workers to exit")
