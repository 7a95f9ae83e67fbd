"""The camera's secure-inference client: protocol v1 over mutual TLS to one edge.

``SecureInferenceClient(address, tls, model_id)``; ``await connect()``;
``await infer(tensor) -> PainAssessment``. Opening a session and checking the
edge's offer is :mod:`.handshake`; running one inference between the event
loop and the SNNI runtime's thread is :mod:`.bridge`. Who holds what: the
camera holds the image, its HE secret key, its shares and the result; only
ciphertexts and uniformly random shares are sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from secfepas_sdk.alerts.assessment import PAIN_LEVELS, PainAssessment
from secfepas_sdk.camera.bridge import InferenceBridge
from secfepas_sdk.camera.handshake import open_session
from secfepas_sdk.camera.pinning import load_pin
from secfepas_sdk.errors import (
    ConnectionLostError,
    ErrorCode,
    InvalidValueError,
    ModelPackageError,
    PeerError,
    ProtocolError,
    SecfepasError,
    SessionError,
)
from secfepas_sdk.logsafe import safe_text
from secfepas_sdk.protocol.address import parse_host_port
from secfepas_sdk.protocol.events import Close, ServerHello, suite_ot_extension, suites_for
from secfepas_sdk.protocol.framing import FrameLimits
from secfepas_sdk.protocol.transport import FramedStream, TlsFiles, client_context
from secfepas_sdk.retry import EDGE_RECONNECT, RetryPolicy

if TYPE_CHECKING:  # the runtime itself is imported when a session starts
    from secfepas_sdk.snni.channel import ChannelStats
    from secfepas_sdk.snni.runtime import ClientRuntime

__all__ = [
    "FATAL_CODES",
    "ClientTimeouts",
    "RetryPolicy",
    "SecureInferenceClient",
    "parse_address",
]

log = logging.getLogger(__name__)

# Codes after which reconnecting to the same edge is pointless.
FATAL_CODES = frozenset(
    {
        ErrorCode.VERSION_MISMATCH,
        ErrorCode.NO_COMMON_SUITE,
        ErrorCode.UNKNOWN_MODEL,
        ErrorCode.MODEL_MISMATCH,
    }
)


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientTimeouts:
    """Seconds: TCP+TLS connect; ServerHello (includes queueing at a busy edge);
    one frame once started; one whole inference."""

    connect_s: float = 10.0
    hello_s: float = 180.0
    frame_s: float = 120.0
    inference_s: float = 900.0

    def __post_init__(self) -> None:
        for name in ("connect_s", "hello_s", "frame_s", "inference_s"):
            if not getattr(self, name) > 0:
                raise InvalidValueError(f"{name} must be > 0")


def parse_address(address: str | tuple[str, int]) -> tuple[str, int]:
    """``"host:port"``, ``"[v6]:port"`` or a tuple -> (host, port) of an edge."""
    return parse_host_port(address, what="edge address")


def _identity(tls: TlsFiles) -> str:
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    try:
        cert = x509.load_pem_x509_certificate(tls.cert.read_bytes())
        return str(cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)
    except (OSError, ValueError, IndexError):
        return "camera"


class SecureInferenceClient:
    """One camera's session with one edge; reconnects with back-off when needed."""

    def __init__(
        self,
        address: str | tuple[str, int],
        tls: TlsFiles,
        model_id: str,
        *,
        server_name: str | None = None,
        camera_id: str | None = None,
        timeouts: ClientTimeouts | None = None,
        retry: RetryPolicy | None = None,
        limits: FrameLimits | None = None,
        max_message: int = 1 << 30,
        model_package: str | Path | None = None,
        ot_extensions: tuple[str, ...] | list[str] | None = None,
    ) -> None:
        """``ot_extensions``: the OT extensions this camera proposes, most wanted first
        (``protocol.events.OT_EXTENSIONS``; the edge takes the first it allows).
        None proposes the library default (``snni.ot.extension.DEFAULT_EXTENSION``,
        Ferret: about half SoftSpokenOT's bytes) first, then the others, so that an
        edge that allows only SoftSpokenOT still serves it."""
        self.host, self.port = parse_address(address)
        if ot_extensions is None:
            from secfepas_sdk.protocol.events import OT_EXTENSIONS
            from secfepas_sdk.snni.ot.extension import DEFAULT_EXTENSION

            others = [ot for ot in OT_EXTENSIONS if ot != DEFAULT_EXTENSION]
            ot_extensions = (DEFAULT_EXTENSION, *others)
        try:
            self.suites = suites_for(tuple(ot_extensions))
        except ValueError as exc:
            raise InvalidValueError(str(exc)) from None
        # The operator's own copy of the model's public part, if any: the edge must match it.
        self.pinned = None if model_package is None else load_pin(model_package, model_id)
        self.tls = tls
        self.model_id = model_id
        self.server_name = server_name
        self.camera_id = camera_id or _identity(tls)
        self.timeouts = timeouts or ClientTimeouts()
        self.retry = retry or EDGE_RECONNECT
        self.limits = limits or FrameLimits()
        self.max_message = max_message
        self._ctx = client_context(tls)
        self._stream: FramedStream | None = None
        self._runtime: ClientRuntime | None = None
        self._hello: ServerHello | None = None  # the most recent session's
        self._setup_done = False
        self._seq = 0
        self._got_data = False
        self.reconnects = 0
        # The last successful inference's SNNI traffic (bytes, rounds, per op label):
        # counts only, for benchmarks and capacity planning.
        self.last_stats: ChannelStats | None = None

    # -- session -----------------------------------------------------------
    @property
    def connected(self) -> bool:
        return self._stream is not None

    @property
    def manifest(self) -> dict[str, Any]:
        if self._hello is None:
            raise RuntimeError("not connected")
        return self._hello.manifest

    @property
    def session_id(self) -> str | None:
        return None if self._hello is None else self._hello.session_id

    @property
    def ot_extension(self) -> str | None:
        """The OT extension the current (or last) session runs, as the edge chose it."""
        return None if self._hello is None else suite_ot_extension(self._hello.suite)

    async def connect(self) -> None:
        """Open a session, retrying with back-off on transient failures."""
        if self._stream is not None:
            return
        last: SecfepasError | None = None
        for attempt in itertools.count(1):
            try:
                await self._connect_once()
                return
            except PeerError as exc:
                if exc.code in FATAL_CODES:
                    raise
                last = exc
            except ConnectionLostError as exc:
                last = exc
            if not self.retry.allows(attempt + 1):
                break
            delay = self.retry.delay(attempt)
            log.info(
                "edge %s:%d unavailable (%s); retry %d in %.1f s",
                self.host,
                self.port,
                safe_text(last),
                attempt,
                delay,
            )
            await asyncio.sleep(delay)
        assert last is not None
        raise last

    async def _connect_once(self) -> None:
        t = self.timeouts
        session = await open_session(
            self.host,
            self.port,
            self._ctx,
            tls=self.tls,
            model_id=self.model_id,
            pinned=self.pinned,
            server_name=self.server_name,
            limits=self.limits,
            connect_s=t.connect_s,
            hello_s=t.hello_s,
            frame_s=t.frame_s,
            suites=self.suites,
        )
        self._stream, self._hello, self._runtime = session.stream, session.hello, session.runtime
        self._setup_done = False

    async def close(self) -> None:
        """End the session politely (Close between inferences)."""
        stream, self._stream = self._stream, None
        self._drop_runtime()
        if stream is None:
            return
        with contextlib.suppress(ProtocolError, SessionError):
            await stream.send(Close(reason="camera done"))
        await stream.aclose()

    def _drop_runtime(self) -> None:
        runtime, self._runtime = self._runtime, None
        if runtime is not None:
            with contextlib.suppress(Exception):
                runtime.close()

    async def _abort(self) -> None:
        stream, self._stream = self._stream, None
        self._drop_runtime()
        if stream is not None:
            stream.abort()
            await stream.aclose()

    async def __aenter__(self) -> SecureInferenceClient:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- inference -----------------------------------------------------------
    async def infer(
        self,
        tensor: NDArray[np.float32],
        *,
        frame_time: float | None = None,
        frame_index: int = 0,
    ) -> PainAssessment:
        """Securely classify one preprocessed NCHW face; only this camera learns the result.

        Connects (with back-off) if needed. If the edge had already ended an idle
        session (idle timeout, restart), the inference is retried once on a new
        session. A failure mid-inference closes the session and raises
        (ConnectionLostError, PeerError, RemoteProtocolError); the next call
        reconnects. Cancellation aborts the session cleanly.
        """
        reused = self._stream is not None
        try:
            return await self._infer_once(tensor, frame_time=frame_time, frame_index=frame_index)
        except (ConnectionLostError, PeerError) as exc:
            stale = isinstance(exc, ConnectionLostError) or exc.code in (
                ErrorCode.TIMEOUT,
                ErrorCode.SHUTTING_DOWN,
            )
            if not (reused and stale and not self._got_data):
                raise
            log.info("the edge had ended the idle session (%s); reconnecting", safe_text(exc))
            return await self._infer_once(tensor, frame_time=frame_time, frame_index=frame_index)

    async def _infer_once(
        self,
        tensor: NDArray[np.float32],
        *,
        frame_time: float | None,
        frame_index: int,
    ) -> PainAssessment:
        self._got_data = False
        if self._stream is None:
            if self._hello is not None:
                self.reconnects += 1
            await self.connect()
        stream, runtime = self._stream, self._runtime
        assert stream is not None and runtime is not None
        x = np.ascontiguousarray(tensor, dtype=np.float32)
        seq = self._seq
        self._seq += 1
        sent0, recv0 = stream.conn.bytes_sent, stream.conn.bytes_received
        start = time.monotonic()
        bridge = InferenceBridge(
            stream,
            runtime,
            inference_s=self.timeouts.inference_s,
            frame_s=self.timeouts.frame_s,
            max_message=self.max_message,
            ot_extension=self.ot_extension,
        )
        try:
            logits = await bridge.run(x, seq=seq, setup=not self._setup_done)
        except BaseException:
            self._got_data = bridge.edge_spoke
            await self._abort()
            raise
        self._setup_done = True
        self.last_stats = bridge.stats
        return self._assessment(
            logits,
            seconds=time.monotonic() - start,
            frame_time=frame_time,
            frame_index=frame_index,
            sent=stream.conn.bytes_sent - sent0,
            received=stream.conn.bytes_received - recv0,
        )

    def _assessment(
        self,
        logits: NDArray[np.float64],
        *,
        seconds: float,
        frame_time: float | None,
        frame_index: int,
        sent: int,
        received: int,
    ) -> PainAssessment:
        from secfepas_sdk.snni.runtime import softmax

        flat = np.asarray(logits, dtype=np.float64).reshape(-1)
        if flat.size != len(PAIN_LEVELS):
            raise ModelPackageError(
                f"model outputs {flat.size} classes; a pain assessment needs {len(PAIN_LEVELS)}"
            )
        probs = softmax(flat)
        manifest = self.manifest
        return PainAssessment(
            level=int(np.argmax(probs)),
            probabilities=tuple(float(p) for p in probs),
            frame_time=time.time() if frame_time is None else float(frame_time),
            frame_index=frame_index,
            camera_id=self.camera_id,
            model_id=str(manifest.get("model_id", self.model_id)),
            model_version=str(manifest.get("version", "")),
            seconds=seconds,
            bytes_sent=sent,
            bytes_received=received,
        )
