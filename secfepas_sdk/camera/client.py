"""The camera's secure-inference client: protocol v1 over mutual TLS to one edge.

``SecureInferenceClient(address, tls, model_id)``; ``await connect()``;
``await infer(tensor) -> PainAssessment``. The SNNI client runtime runs in a
worker thread; its messages travel as DATA frames on the event loop. Who holds
what: the camera holds the image, its HE secret key, its shares and the
result; only ciphertexts and uniformly random shares are sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from secfepas_sdk.alerts.assessment import PAIN_LEVELS, PainAssessment
from secfepas_sdk.camera.certcheck import own_certificate_problem
from secfepas_sdk.camera.pinning import check_pinned, load_pin
from secfepas_sdk.errors import (
    ConnectionLostError,
    ErrorCode,
    InvalidValueError,
    ModelPackageError,
    PeerError,
    ProtocolError,
    RemoteProtocolError,
    SecfepasError,
    SessionError,
    TlsRefusedError,
)
from secfepas_sdk.logsafe import safe_text
from secfepas_sdk.protocol.events import (
    PROTOCOL_VERSIONS,
    SUITE_CHEETAH_V1,
    ClientHello,
    Close,
    Error,
    InferenceBegin,
    InferenceEnd,
    ServerHello,
)
from secfepas_sdk.protocol.framing import FrameLimits
from secfepas_sdk.protocol.pump import MessagePump, peer_error
from secfepas_sdk.protocol.tls_failures import peer_alert
from secfepas_sdk.protocol.transport import (
    FramedStream,
    ThreadChannel,
    TlsFiles,
    client_context,
    open_client,
)

if TYPE_CHECKING:  # the runtime itself is imported when a session starts
    from secfepas_sdk.snni.runtime import ClientRuntime

__all__ = ["ClientTimeouts", "RetryPolicy", "SecureInferenceClient", "parse_address"]

log = logging.getLogger(__name__)

# Codes after which reconnecting to the same edge is pointless.
FATAL_CODES = frozenset({"version_mismatch", "no_common_suite", "unknown_model", "model_mismatch"})


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


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """Exponential back-off with jitter between connection attempts."""

    attempts: int = 5
    initial_s: float = 0.5
    max_s: float = 15.0
    multiplier: float = 2.0

    def __post_init__(self) -> None:
        if self.attempts < 1 or self.initial_s < 0 or self.max_s < self.initial_s:
            raise InvalidValueError("attempts >= 1 and 0 <= initial_s <= max_s are required")
        if self.multiplier < 1:
            raise InvalidValueError("multiplier must be >= 1")

    def delay(self, attempt: int) -> float:
        """Back-off before retry number ``attempt`` (1-based), with +-20 % jitter."""
        base = min(self.max_s, self.initial_s * self.multiplier ** (attempt - 1))
        jitter = 0.8 + 0.4 * secrets.randbelow(1001) / 1000
        return base * jitter


def parse_address(address: str | tuple[str, int]) -> tuple[str, int]:
    """``"host:port"``, ``"[v6]:port"`` or a tuple -> (host, port)."""
    if isinstance(address, tuple):
        host, port = address
    else:
        host, sep, port_text = address.rpartition(":")
        if not sep or not port_text.isdigit():
            raise InvalidValueError(f"edge address must be HOST:PORT, got {address!r}")
        port = int(port_text)
        host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not host or not 0 < int(port) < 65536:
        raise InvalidValueError(f"bad edge address {address!r}")
    return str(host), int(port)


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
    ) -> None:
        self.host, self.port = parse_address(address)
        # The operator's own copy of the model's public part, if any: the edge must match it.
        self.pinned = None if model_package is None else load_pin(model_package, model_id)
        self.tls = tls
        self.model_id = model_id
        self.server_name = server_name
        self.camera_id = camera_id or _identity(tls)
        self.timeouts = timeouts or ClientTimeouts()
        self.retry = retry or RetryPolicy()
        self.limits = limits or FrameLimits()
        self.max_message = max_message
        self._ctx = client_context(tls)
        self._stream: FramedStream | None = None
        self._runtime: ClientRuntime | None = None
        self._hello: ServerHello | None = None
        self._setup_done = False
        self._seq = 0
        self._got_data = False
        self.reconnects = 0

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

    async def connect(self) -> None:
        """Open a session, retrying with back-off on transient failures."""
        if self._stream is not None:
            return
        last: SecfepasError | None = None
        for attempt in range(1, self.retry.attempts + 1):
            try:
                await self._connect_once()
                return
            except PeerError as exc:
                if exc.code in FATAL_CODES:
                    raise
                last = exc
            except ConnectionLostError as exc:
                last = exc
            if attempt < self.retry.attempts:
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
        stream = await open_client(
            self.host,
            self.port,
            self._ctx,
            server_name=self.server_name,
            limits=self.limits,
            timeout=t.connect_s,
        )
        try:
            await stream.send(
                ClientHello(
                    versions=PROTOCOL_VERSIONS, model_id=self.model_id, suites=(SUITE_CHEETAH_V1,)
                )
            )
            try:
                event = await stream.next_event(t.hello_s, frame_timeout=t.frame_s)
            except RemoteProtocolError as exc:
                if exc.code == "unexpected_eof":  # TLS 1.3: how a refused certificate looks
                    raise self._refused() from exc
                raise
            except ConnectionLostError as exc:
                alert = peer_alert(exc.__cause__)
                if alert is not None:
                    raise TlsRefusedError(f"the edge refused our certificate: {alert}") from exc
                raise
            if isinstance(event, Error):
                raise peer_error(event, "the edge")
            assert isinstance(event, ServerHello)  # the table allows nothing else
            try:
                runtime = self._make_runtime(event)
            except ModelPackageError as exc:
                with contextlib.suppress(ProtocolError, SessionError):
                    await stream.send(Error(code=ErrorCode.MODEL_MISMATCH, message=str(exc)[:1000]))
                raise
        except BaseException:
            await stream.aclose()
            raise
        self._stream, self._hello, self._runtime = stream, event, runtime
        self._setup_done = False
        log.info(
            "session %s with edge %s (model %s)",
            safe_text(event.session_id),
            safe_text(stream.peer),
            self.model_id,
        )

    def _refused(self) -> TlsRefusedError:
        """The edge closed the connection right after the handshake, before any reply.

        An edge that is busy or stopping says so in an Error frame; a bare close
        at this point is TLS 1.3's refusal of our certificate (checked after our
        side finished the handshake; asyncio sends no alert). Permanent.
        """
        why = own_certificate_problem(self.tls.cert, self.tls.ca) or (
            "the edge's log says why (a CA it does not trust, or a revoked certificate)"
        )
        return TlsRefusedError(f"the edge refused our certificate ({self.tls.cert}): {why}")

    def _make_runtime(self, hello: ServerHello) -> ClientRuntime:
        from secfepas_sdk.errors import SnniError
        from secfepas_sdk.snni.plan import Plan
        from secfepas_sdk.snni.runtime import ClientRuntime

        if hello.manifest.get("model_id") != self.model_id:
            raise ModelPackageError(
                f"the edge offered model {hello.manifest.get('model_id')!r}, not {self.model_id!r}"
            )
        try:
            plan = Plan.from_dict(hello.plan)
        except SnniError as exc:
            raise RemoteProtocolError(f"the edge's plan is invalid: {exc}", "bad_message") from exc
        hashes = hello.manifest.get("hashes")
        want = hashes.get("plan.json") if isinstance(hashes, dict) else None
        got = hashlib.sha256(plan.to_json().encode("utf-8")).hexdigest()
        if want != got:
            raise ModelPackageError("the edge's plan does not match its manifest's plan hash")
        if self.pinned is not None:
            check_pinned(self.pinned, hello.manifest, plan)
        return ClientRuntime(plan)

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
            stale = isinstance(exc, ConnectionLostError) or exc.code in ("timeout", "shutting_down")
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
        setup = not self._setup_done
        sent0, recv0 = stream.conn.bytes_sent, stream.conn.bytes_received
        start = time.monotonic()
        loop = asyncio.get_running_loop()
        chan = ThreadChannel(
            loop,
            stream.send_message,
            timeout_s=self.timeouts.inference_s,
            max_message=self.max_message,
        )

        def compute() -> NDArray[np.float64]:
            if setup:
                runtime.setup(chan)
            logits: NDArray[np.float64] = runtime.infer(chan, x)
            return logits

        try:
            await stream.send(InferenceBegin(seq=seq, setup=setup))
        except BaseException:
            await self._abort()
            raise
        work = asyncio.ensure_future(asyncio.to_thread(compute))
        pump = asyncio.ensure_future(self._pump(stream, chan))
        try:
            async with asyncio.timeout(self.timeouts.inference_s):
                done, _ = await asyncio.wait({work, pump}, return_when=asyncio.FIRST_EXCEPTION)
                if pump in done and pump.exception() is not None:
                    raise pump.exception()  # type: ignore[misc]
                logits = await work
                await pump
        except BaseException as exc:
            chan.fail("inference aborted")
            pump.cancel()
            await asyncio.gather(pump, return_exceptions=True)
            if not work.done():
                # The thread stops at its next channel call (the channel has failed).
                with contextlib.suppress(BaseException):
                    async with asyncio.timeout(5.0):
                        await asyncio.shield(work)
            await self._tell_edge(stream, exc)
            await self._abort()
            if isinstance(exc, TimeoutError):
                raise ConnectionLostError(
                    f"inference exceeded {self.timeouts.inference_s} s", "timeout"
                ) from None
            if isinstance(exc, SecfepasError) and not isinstance(
                exc, (ProtocolError, SessionError)
            ):
                raise ConnectionLostError(
                    f"secure inference failed: {exc}", "inference_failed"
                ) from exc
            raise
        self._setup_done = True
        seconds = time.monotonic() - start
        return self._assessment(
            logits,
            seconds=seconds,
            frame_time=frame_time,
            frame_index=frame_index,
            sent=stream.conn.bytes_sent - sent0,
            received=stream.conn.bytes_received - recv0,
        )

    @staticmethod
    async def _tell_edge(stream: FramedStream, exc: BaseException) -> None:
        """Say why we end the session, when the cause is on our side (best effort)."""
        if isinstance(exc, asyncio.CancelledError):
            error = Error(code=ErrorCode.CANCELLED, message="the camera cancelled the inference")
        elif isinstance(exc, TimeoutError):
            error = Error(code=ErrorCode.TIMEOUT, message="the camera's inference timeout expired")
        elif isinstance(exc, SecfepasError) and not isinstance(exc, (ProtocolError, SessionError)):
            error = Error(
                code=ErrorCode.INFERENCE_FAILED, message="the camera's computation failed"
            )
        else:
            return  # the edge or the network ended it: nothing to tell
        with contextlib.suppress(ProtocolError, SessionError, TimeoutError):
            async with asyncio.timeout(1.0):
                await stream.send(error)

    async def _pump(self, stream: FramedStream, chan: ThreadChannel) -> None:
        """Edge -> thread: SNNI messages until InferenceEnd (whose seq the connection checks)."""
        pump = MessagePump(
            stream,
            max_message=self.max_message,
            frame_timeout=self.timeouts.frame_s,
            peer="the edge",
        )

        async def feed(message: bytes) -> None:
            chan.feed(message)

        try:
            end = await pump.run(feed)
            if isinstance(end, Close):
                raise PeerError(f"the edge closed the session: {end.reason}", "shutting_down")
            assert isinstance(end, InferenceEnd)  # the table allows nothing else
        except BaseException as exc:
            chan.fail(f"session ended: {exc}")
            raise
        finally:
            self._got_data = pump.chunks > 0

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
