"""The edge server: TLS listener, admission control, sessions, worker pool.

``async with Server(settings) as server: await server.serve_forever()``
(or ``start()`` / ``stop(grace_s)`` by hand); :func:`stop_on_signals` makes
SIGTERM and SIGINT stop it gracefully. One asyncio loop accepts cameras and
forwards bytes; the crypto runs in one worker process per session (forked from
a model host, :mod:`.workers`), so the loop never blocks and a dying worker
ends only its own session. Further cameras wait in a bounded queue and are then
told ``busy``; each camera identity (certificate CN) holds at most
``max_sessions_per_camera`` sessions, waiting ones included.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import signal
import ssl
from collections import Counter
from collections.abc import Callable, Iterable
from types import TracebackType

from secfepas_sdk.edge.budget import BudgetExhausted, ModelBudget, PrivacyBudgets
from secfepas_sdk.edge.metrics import EdgeMetrics, MetricsServer
from secfepas_sdk.edge.registry import ModelRegistry, RegisteredModel
from secfepas_sdk.edge.session import EdgeSession, WorkerFailed
from secfepas_sdk.edge.settings import EdgeSettings, he_workers_for
from secfepas_sdk.edge.workers import WorkerHost
from secfepas_sdk.errors import (
    ConfigError,
    ConnectionLostError,
    ErrorCode,
    NegotiationError,
    PeerError,
    ProtocolError,
    RemoteProtocolError,
    SecfepasError,
    SessionError,
)
from secfepas_sdk.protocol.connection import Connection, Role
from secfepas_sdk.protocol.events import ClientHello, Error, ServerHello, suites_for
from secfepas_sdk.protocol.framing import FrameLimits
from secfepas_sdk.protocol.pump import peer_error
from secfepas_sdk.protocol.tls_failures import handshake_failure
from secfepas_sdk.protocol.transport import (
    FramedStream,
    TlsFiles,
    server_context,
)

__all__ = ["Server", "stop_on_signals"]

log = logging.getLogger(__name__)

_REVOKED = 23  # X509_V_ERR_CERT_REVOKED


class _Refused(SecfepasError):
    """Internal: end the session with this protocol error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class Server:
    """Serve the edge half of secure inference to many authenticated cameras."""

    def __init__(
        self,
        settings: EdgeSettings,
        *,
        registry: ModelRegistry | None = None,
        grace_s: float = 30.0,
    ) -> None:
        self.settings = settings
        self.grace_s = grace_s  # for stop() at the end of ``async with``
        self.metrics = EdgeMetrics()
        self._registry = registry
        self.budgets = PrivacyBudgets([], enforce=settings.circuit_privacy_enforce)
        self._ssl: ssl.SSLContext | None = None
        self._listener: asyncio.Server | None = None
        self._metrics_server: MetricsServer | None = None
        self._workers: WorkerHost | None = None
        self._per_camera: Counter[str] = Counter()
        self._slots: asyncio.Semaphore | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self._sessions: set[EdgeSession] = set()
        self._stop_requested: asyncio.Event | None = None
        self._stopped: asyncio.Event | None = None
        self._limits = FrameLimits(max_data=settings.max_data_frame)
        # The suites (one per OT extension) cameras may choose from, in the operator's order.
        self._suites = suites_for(settings.ot_extensions)

    # -- lifecycle ---------------------------------------------------------
    async def start(self) -> None:
        """Verify the models, load TLS material, start the pool and listeners."""
        s = self.settings
        if self._registry is None:
            self._registry = await asyncio.to_thread(ModelRegistry.load, s.model_dir)
        self.budgets = PrivacyBudgets(
            [
                ModelBudget(
                    model_id=m.model_id,
                    version=m.version,
                    covered=m.budget_covered,
                    stated=m.budget_stated,
                )
                for m in self._registry
                if m.budget_covered is not None
            ],
            enforce=s.circuit_privacy_enforce,
        )
        self.metrics.budgets = self.budgets
        self._ssl = self._tls_context()
        self._stop_requested = asyncio.Event()
        self._stopped = asyncio.Event()
        self._slots = asyncio.Semaphore(s.max_sessions)
        self._workers = WorkerHost(
            [str(m.path) for m in self._registry],
            start_method=s.worker_start_method,
            load_timeout_s=s.inference_timeout_s,
            he_cache_bytes=s.he_cache_bytes,
            he_workers=he_workers_for(s),
        )
        await self._workers.start()
        try:
            self._listener = await asyncio.start_server(self._on_connect, s.host, s.port)
        except OSError as exc:
            await self.stop(0.0)
            raise ConfigError(
                f"cannot listen for cameras on {s.host}:{s.port}: {_reason(exc)}"
            ) from None
        if s.metrics_enabled:
            metrics = MetricsServer(self.metrics, self._healthy, s.metrics_host, s.metrics_port)
            try:
                await metrics.start()
            except OSError as exc:
                await self.stop(0.0)
                raise ConfigError(
                    f"cannot serve metrics on {s.metrics_host}:{s.metrics_port}: {_reason(exc)} "
                    "(another edge on this host? choose another metrics_port, or switch "
                    "metrics off)"
                ) from None
            self._metrics_server = metrics
        host, port = self.address
        log.info(
            "edge listening on %s:%d: %d model(s), %d session slots, queue %d",
            host,
            port,
            len(self._registry),
            s.max_sessions,
            s.max_queue,
        )

    async def __aenter__(self) -> Server:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop(self.grace_s)

    def _tls_context(self) -> ssl.SSLContext:
        """TLS 1.3 with client certificates from the site CA; with ``crl`` set, a
        camera whose certificate the CRL lists is refused in the handshake."""
        s = self.settings
        ctx = server_context(TlsFiles(ca=s.ca, cert=s.cert, key=s.key))
        if s.crl is not None:
            try:
                ctx.load_verify_locations(cafile=str(s.crl))
            except (OSError, ssl.SSLError) as exc:
                raise ConfigError(f"cannot load the CRL {s.crl}: {exc}") from exc
            ctx.verify_flags |= ssl.VERIFY_CRL_CHECK_LEAF
        return ctx

    def reload_tls(self) -> bool:
        """Re-read the certificates and the CRL (SIGHUP); new handshakes use them,
        running sessions go on. On an error the old context stays; returns success."""
        try:
            self._ssl = self._tls_context()
        except ConfigError as exc:
            log.error("TLS reload failed, keeping the previous settings: %s", exc)
            return False
        log.info("TLS material and CRL reloaded")
        return True

    @property
    def address(self) -> tuple[str, int]:
        if self._listener is None:
            raise RuntimeError("server not started")
        sockname = self._listener.sockets[0].getsockname()
        return str(sockname[0]), int(sockname[1])

    @property
    def metrics_port(self) -> int | None:
        return None if self._metrics_server is None else self._metrics_server.port

    def _healthy(self) -> bool:
        return self._stop_requested is not None and not self._stop_requested.is_set()

    async def serve_forever(self) -> None:
        """Return once :meth:`stop` has completed."""
        if self._stopped is None:
            raise RuntimeError("call start() first")
        await self._stopped.wait()

    async def stop(self, grace_s: float = 30.0) -> None:
        """Stop accepting; let in-flight inferences finish until ``grace_s``, then cut."""
        if self._stop_requested is None or self._stopped is None:
            return
        if self._stop_requested.is_set():
            await self._stopped.wait()
            return
        self._stop_requested.set()
        log.info("edge stopping (grace %.1f s, %d connection(s))", grace_s, len(self._connections))
        if self._listener is not None:
            self._listener.close()
        pending = set(self._connections)
        if pending:
            _, pending = await asyncio.wait(pending, timeout=grace_s)
        for session in list(self._sessions):
            session.kill_worker()
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=5.0)
        if self._workers is not None:
            await self._workers.stop()
        if self._metrics_server is not None:
            await self._metrics_server.stop()
        if self._listener is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(2.0):
                    await self._listener.wait_closed()
        log.info("edge stopped")
        self._stopped.set()

    # -- connections -------------------------------------------------------
    async def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            await self._connection(reader, writer)
        finally:
            self._connections.discard(task)

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        addr = f"{peer[0]}:{peer[1]}" if peer else "?"
        assert self._ssl is not None
        # One deadline for the TLS handshake and the ClientHello together: a camera
        # trickling either one byte at a time is cut when it expires.
        deadline = asyncio.get_running_loop().time() + self.settings.handshake_timeout_s
        try:
            await writer.start_tls(
                self._ssl, ssl_handshake_timeout=self.settings.handshake_timeout_s
            )
        except (ssl.SSLError, OSError, TimeoutError) as exc:
            self.metrics.tls_refused += 1
            if isinstance(exc, ssl.SSLCertVerificationError) and exc.verify_code == _REVOKED:
                self.metrics.tls_revoked += 1
            log.warning("TLS handshake with %s failed: %s", addr, handshake_failure(exc, "camera"))
            writer.transport.abort()
            return
        conn = Connection(Role.SERVER, limits=self._limits, suites=self._suites, setup_once=True)
        stream = FramedStream(reader, writer, conn)
        self.metrics.track(stream.conn)
        try:
            await self._session(stream, deadline)
        except (_Refused, NegotiationError, BudgetExhausted) as exc:
            self.metrics.errors[exc.code] += 1
            log.info("camera %s at %s refused (%s): %s", stream.peer, addr, exc.code, exc)
            await self._send_error(stream, exc.code, str(exc))
        except WorkerFailed as exc:
            self.metrics.errors[exc.code] += 1
            log.warning("camera %s: session failed (%s): %s", stream.peer, exc.code, exc)
            said = str(exc) if exc.public else "the edge could not complete the inference"
            await self._send_error(stream, exc.code, said)
        except RemoteProtocolError as exc:
            self.metrics.errors[exc.code] += 1
            log.warning("camera %s broke the protocol (%s): %s", stream.peer, exc.code, exc)
            await self._send_error(stream, exc.code, str(exc))
        except ConnectionLostError as exc:
            self.metrics.errors[exc.code] += 1
            log.info("camera %s: connection lost (%s): %s", stream.peer, exc.code, exc)
            if exc.code == "timeout":
                await self._send_error(stream, "timeout", str(exc))
        except PeerError as exc:
            self.metrics.errors[f"peer_{exc.code}"] += 1
            log.info("camera %s ended the session: %s", stream.peer, exc)
        except Exception as exc:  # a bug of ours: the session still ends counted and closed
            self.metrics.errors["internal"] += 1
            log.error(
                "camera %s: internal error (%s)", stream.peer, type(exc).__name__, exc_info=exc
            )
            await self._send_error(stream, "internal", "the edge could not complete the inference")
        except asyncio.CancelledError:
            self.metrics.errors["shutting_down"] += 1
            with contextlib.suppress(Exception):
                async with asyncio.timeout(1.0):
                    await self._send_error(stream, "shutting_down", "the edge is stopping")
            stream.abort()
            raise
        finally:
            self.metrics.untrack(stream.conn)
            await stream.aclose()

    async def _send_error(self, stream: FramedStream, code: str, message: str) -> None:
        # If the peer is gone or the session already ended there is nothing more to say.
        with contextlib.suppress(ProtocolError, SessionError, ValueError):
            await stream.send(Error(code=ErrorCode(code), message=message[:1000]))

    async def _session(self, stream: FramedStream, hello_deadline: float) -> None:
        s = self.settings
        left = max(0.0, hello_deadline - asyncio.get_running_loop().time())
        event = await stream.next_event(left, frame_timeout=left)
        if isinstance(event, Error):
            raise peer_error(event, "the camera")
        # The connection admits nothing else first, and has negotiated version and suite.
        assert isinstance(event, ClientHello)
        hello = event
        version, suite = stream.conn.version, stream.conn.suite
        assert version is not None and suite is not None
        assert self._registry is not None
        model = self._registry.get(hello.model_id)
        if model is None:
            available = ", ".join(m.model_id for m in self._registry)
            raise _Refused("unknown_model", f"no model {hello.model_id!r}; available: {available}")
        assert self._stop_requested is not None
        if self._stop_requested.is_set():
            raise _Refused("shutting_down", "the edge is stopping")
        self.budgets.check(model.model_id)
        if self._per_camera[stream.peer] >= s.max_sessions_per_camera:
            raise _Refused(
                "busy",
                f"camera {stream.peer} already holds {s.max_sessions_per_camera} session(s) "
                "on this edge; close one first",
            )
        self._per_camera[stream.peer] += 1
        try:
            await self._admit()
            try:
                await self._run_session(stream, model, version, suite)
            finally:
                assert self._slots is not None
                self._slots.release()
                self.metrics.sessions_active -= 1
        finally:
            self._per_camera[stream.peer] -= 1
            if self._per_camera[stream.peer] <= 0:
                del self._per_camera[stream.peer]

    async def _admit(self) -> None:
        """Take a session slot, waiting in the bounded queue; else refuse ``busy``."""
        s = self.settings
        assert self._slots is not None and self._stop_requested is not None
        if self._slots.locked():
            if self.metrics.sessions_queued >= s.max_queue:
                raise _Refused(
                    "busy",
                    f"all {s.max_sessions} session slots are taken and "
                    f"{s.max_queue} camera(s) already wait; retry later",
                )
            self.metrics.sessions_queued += 1
            acquire = asyncio.ensure_future(self._slots.acquire())
            stop = asyncio.ensure_future(self._stop_requested.wait())
            try:
                await asyncio.wait(
                    {acquire, stop}, timeout=s.queue_timeout_s, return_when=asyncio.FIRST_COMPLETED
                )
            finally:
                stop.cancel()
                self.metrics.sessions_queued -= 1
                if not acquire.done():
                    acquire.cancel()
            got = acquire.done() and not acquire.cancelled() and acquire.exception() is None
            if got and self._stop_requested.is_set():
                self._slots.release()
                got = False
            if not got:
                if self._stop_requested.is_set():
                    raise _Refused("shutting_down", "the edge is stopping")
                raise _Refused("busy", f"no session slot became free within {s.queue_timeout_s} s")
        else:
            await self._slots.acquire()
        self.metrics.sessions_active += 1
        self.metrics.sessions_total += 1

    async def _run_session(
        self, stream: FramedStream, model: RegisteredModel, version: int, suite: str
    ) -> None:
        assert self._workers is not None and self._stop_requested is not None
        session_id = secrets.token_hex(8)
        session = EdgeSession(
            stream=stream,
            model=model,
            version=version,
            suite=suite,
            session_id=session_id,
            settings=self.settings,
            workers=self._workers,
            metrics=self.metrics,
            stop_requested=self._stop_requested,
            budgets=self.budgets,
        )

        async def send_hello() -> None:
            await stream.send(
                ServerHello(
                    version=version,
                    suite=suite,
                    session_id=session_id,
                    manifest=model.manifest,
                    plan=model.plan,
                )
            )
            log.info(
                "session %s: camera %s, model %s v%s, suite %s",
                session_id,
                stream.peer,
                model.model_id,
                model.version,
                suite,
            )

        self._sessions.add(session)
        try:
            await session.run(send_hello)
        finally:
            self._sessions.discard(session)
        log.info("session %s ended after %d inference(s)", session_id, session.inferences)


def reload_on_sighup(server: Server) -> Callable[[], None]:
    """Make SIGHUP re-read the TLS files and the CRL (:meth:`Server.reload_tls`);
    returns the undo. Call it from the server's event loop."""
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGHUP, server.reload_tls)

    def undo() -> None:
        loop.remove_signal_handler(signal.SIGHUP)

    return undo


def stop_on_signals(
    server: Server,
    *,
    grace_s: float | None = None,
    signals: Iterable[signal.Signals] = (signal.SIGTERM, signal.SIGINT),
) -> Callable[[], None]:
    """Make each of ``signals`` start ``server.stop(grace_s)``; returns the undo.

    Call it from the server's event loop (the handlers run in that loop). A
    second signal while stopping changes nothing: stop() is idempotent.
    """
    loop = asyncio.get_running_loop()
    grace = server.grace_s if grace_s is None else grace_s
    installed = list(signals)
    tasks: set[asyncio.Task[None]] = set()

    def on_signal() -> None:
        task = loop.create_task(server.stop(grace))
        tasks.add(task)  # keep a reference until it is done
        task.add_done_callback(tasks.discard)

    for sig in installed:
        loop.add_signal_handler(sig, on_signal)

    def undo() -> None:
        for sig in installed:
            loop.remove_signal_handler(sig)

    return undo


def _reason(exc: OSError) -> str:
    """The OS's words for a failed bind ("address already in use"), without the errno."""
    return os.strerror(exc.errno).lower() if exc.errno else str(exc)
