"""The protocol's only I/O: asyncio streams over TLS 1.3 with mutual authentication.

- :func:`server_context` / :func:`client_context` build TLS 1.3-only contexts that
  require a certificate from the peer; each trusts only the site CA file it is given
  (the camera pins the edge's CA: no system trust store).
- :class:`FramedStream` couples a stream with a sans-IO :class:`Connection`.
- :class:`ThreadChannel` lets synchronous SNNI code (which speaks
  :class:`~secfepas_sdk.snni.channel.Channel`) run in a worker thread while its
  messages travel as DATA frames on the event loop.
- :class:`SocketChannel` carries length-prefixed SNNI messages over a plain,
  blocking stream socket (the two-process selftest, benchmarks, tests);
  :func:`read_exact` is its read loop, shared with the edge worker's relay.

The engine (``snni``) does no I/O of its own: these are the channels it talks
through.
"""

from __future__ import annotations

import asyncio
import os
import queue
import socket
import ssl
import struct
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from secfepas_sdk.errors import ConfigError, ConnectionLostError, ErrorCode, TlsRefusedError
from secfepas_sdk.protocol.connection import NEED_DATA, Connection, Role
from secfepas_sdk.protocol.events import ControlEvent, Data, Event
from secfepas_sdk.protocol.framing import FrameLimits
from secfepas_sdk.protocol.messages import split_message
from secfepas_sdk.protocol.tls_failures import peer_alert, verify_failure
from secfepas_sdk.snni.channel import (
    DEFAULT_MAX_MESSAGE,
    Channel,
    ChannelError,
    EndOfChannel,
    Inbox,
    take_message,
)

__all__ = [
    "FramedStream",
    "SocketChannel",
    "ThreadChannel",
    "TlsFiles",
    "client_context",
    "open_client",
    "peer_identity",
    "read_exact",
    "server_context",
    "tls_failure_reason",
]

READ_CHUNK = 1 << 16
_LEN = struct.Struct("!Q")  # SocketChannel's message length prefix


@dataclass(frozen=True, slots=True, init=False)
class TlsFiles:
    """PEM files of one party: the CA it trusts, its own certificate and key.

    Paths may be given as ``str`` or any ``os.PathLike``; they are kept as Paths.
    """

    ca: Path
    cert: Path
    key: Path

    def __init__(
        self,
        *,
        ca: str | os.PathLike[str],
        cert: str | os.PathLike[str],
        key: str | os.PathLike[str],
    ) -> None:
        object.__setattr__(self, "ca", Path(ca))
        object.__setattr__(self, "cert", Path(cert))
        object.__setattr__(self, "key", Path(key))


def _base_context(purpose: int, files: TlsFiles) -> ssl.SSLContext:
    ctx = ssl.SSLContext(purpose)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.maximum_version = ssl.TLSVersion.TLSv1_3
    ctx.verify_mode = ssl.CERT_REQUIRED
    try:
        ctx.load_verify_locations(cafile=str(files.ca))
        ctx.load_cert_chain(certfile=str(files.cert), keyfile=str(files.key))
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"cannot load TLS material ({files.cert}, {files.ca}): {exc}") from exc
    return ctx


def server_context(files: TlsFiles) -> ssl.SSLContext:
    """Edge side: TLS 1.3 only; every camera must present a certificate from our CA."""
    return _base_context(ssl.PROTOCOL_TLS_SERVER, files)


def client_context(files: TlsFiles) -> ssl.SSLContext:
    """Camera side: TLS 1.3 only; trust only ``files.ca`` (pinned) and check the host name."""
    ctx = _base_context(ssl.PROTOCOL_TLS_CLIENT, files)
    ctx.check_hostname = True
    return ctx


def peer_identity(ssl_object: ssl.SSLObject | ssl.SSLSocket | None) -> str:
    """The verified peer certificate's common name (the camera identity)."""
    if ssl_object is None:
        return "?"
    cert: dict[str, Any] | None = ssl_object.getpeercert()
    if not cert:
        return "?"
    for rdn in cert.get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return str(value)
    for kind, value in cert.get("subjectAltName", ()):
        if kind == "DNS":
            return str(value)
    return "?"


def tls_failure_reason(exc: BaseException) -> str:
    """A short, loggable reason for a failed handshake (no key material in it)."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"certificate rejected: {exc.verify_message}"
    if isinstance(exc, ssl.SSLError):
        return exc.reason or exc.__class__.__name__
    if isinstance(exc, TimeoutError):
        return "handshake timed out"
    return f"{exc.__class__.__name__}: {exc}"


class FramedStream:
    """A TLS stream speaking protocol v1 through a sans-IO Connection."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        conn: Connection,
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.conn = conn
        self._write_lock = asyncio.Lock()
        ssl_object = writer.get_extra_info("ssl_object")
        self.peer = peer_identity(ssl_object)
        peername = writer.get_extra_info("peername")
        self.address = f"{peername[0]}:{peername[1]}" if peername else "?"

    async def send(self, *events: ControlEvent | Data) -> None:
        """Encode and write events (as one write), waiting for the buffer to drain."""
        async with self._write_lock:
            payload = b"".join(self.conn.send(e) for e in events)
            try:
                self.writer.write(payload)
                await self.writer.drain()
            except (OSError, ssl.SSLError) as exc:
                raise ConnectionLostError(
                    f"write failed: {exc}", ErrorCode.CONNECTION_LOST
                ) from exc

    async def send_message(self, message: bytes) -> None:
        """One SNNI message as DATA frames (split at the frame limit)."""
        await self.send(*split_message(message, self.conn.limits.max_data))

    async def next_event(
        self, timeout: float | None = None, *, frame_timeout: float | None = None
    ) -> Event:
        """The next event from the peer.

        ``timeout`` bounds the whole wait; ``frame_timeout`` bounds the time from
        a frame's first byte to its last, as one deadline (a peer trickling one
        byte at a time is cut when it expires, however often it writes).
        Raises RemoteProtocolError (bad bytes) or ConnectionLostError (reset,
        TLS alert, timeout).
        """
        loop = asyncio.get_running_loop()
        frame_deadline: float | None = None
        try:
            async with asyncio.timeout(timeout):
                while True:
                    event = self.conn.next_event()
                    if event is not NEED_DATA:
                        return event  # type: ignore[return-value]
                    if frame_timeout is not None and self.conn.partial and frame_deadline is None:
                        # Until an event is returned, every byte belongs to this frame.
                        frame_deadline = loop.time() + frame_timeout
                    try:
                        async with asyncio.timeout_at(frame_deadline):
                            chunk = await self.reader.read(READ_CHUNK)
                    except TimeoutError:
                        raise  # an OSError too, but ours: reported as a timeout below
                    except (OSError, ssl.SSLError) as exc:
                        raise ConnectionLostError(
                            f"connection lost: {tls_failure_reason(exc)}", ErrorCode.CONNECTION_LOST
                        ) from exc
                    self.conn.receive_data(chunk)
        except TimeoutError:
            raise ConnectionLostError(
                f"no complete message from the peer within {timeout or frame_timeout} s",
                ErrorCode.TIMEOUT,
            ) from None

    async def aclose(self) -> None:
        """Close the stream without waiting long for the peer's TLS close_notify.

        When the peer does not answer in time (or this task is cancelled), the
        transport is aborted, so its socket is closed either way: an SSL transport
        left waiting for close_notify would hold its file descriptor until collected.
        It waits even when the transport is closing already (the peer closed first, or
        :meth:`abort` ran): the socket closes on a later loop iteration, and a loop that
        ended before it would leave it open (reported as an unclosed transport)."""
        if not self.writer.is_closing():
            self.writer.close()
        try:
            async with asyncio.timeout(2.0):
                await self.writer.wait_closed()
        except (OSError, ssl.SSLError, TimeoutError):
            self.writer.transport.abort()
        except asyncio.CancelledError:
            self.writer.transport.abort()
            raise

    def abort(self) -> None:
        """Drop the connection at once (TCP reset semantics)."""
        transport = self.writer.transport
        transport.abort()


async def open_client(
    host: str,
    port: int,
    ctx: ssl.SSLContext,
    *,
    server_name: str | None = None,
    limits: FrameLimits | None = None,
    timeout: float = 10.0,
) -> FramedStream:
    """Connect to an edge, complete the TLS handshake and return the camera's stream."""
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(
                host,
                port,
                ssl=ctx,
                server_hostname=server_name or host,
                ssl_handshake_timeout=timeout,
                limit=READ_CHUNK * 4,
            )
    except (OSError, ssl.SSLError, TimeoutError) as exc:
        raise _connect_failure(exc, host, port) from exc
    return FramedStream(reader, writer, Connection(Role.CLIENT, limits=limits, setup_once=True))


def _connect_failure(
    exc: BaseException, host: str, port: int
) -> ConnectionLostError | TlsRefusedError:
    """A certificate refusal is permanent (retrying cannot fix it); anything else may pass."""
    verified = verify_failure(exc)
    if verified is not None:
        hint = ""
        if verified.startswith("wrong name"):
            hint = "; connect with a name it is issued for (server_name, --server-name)"
        elif verified.startswith("unknown CA"):
            hint = "; it is not issued by the CA this camera pins"
        return TlsRefusedError(f"the edge's certificate failed verification: {verified}{hint}")
    alert = peer_alert(exc)
    if alert is not None:
        return TlsRefusedError(f"the edge refused our certificate: {alert}")
    return ConnectionLostError(
        f"cannot reach the edge at {host}:{port}: {tls_failure_reason(exc)}",
        ErrorCode.CONNECTION_LOST,
    )


class ThreadChannel(Channel):
    """Channel for SNNI code running in a thread; the event loop carries its bytes.

    The loop side calls :meth:`feed` with each reassembled peer message and
    :meth:`fail` when the session breaks; the thread's ``send`` blocks until
    the loop has written the message (back-pressure), bounded by ``timeout_s``.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        sender: Callable[[bytes], Coroutine[Any, Any, None]],
        *,
        timeout_s: float,
        max_message: int = DEFAULT_MAX_MESSAGE,
    ) -> None:
        super().__init__(max_message=max_message)
        self._loop = loop
        self._sender = sender
        self._timeout_s = timeout_s
        self._inbox: Inbox = queue.Queue()

    # loop side ------------------------------------------------------------
    def feed(self, message: bytes) -> None:
        self._inbox.put(message)

    def fail(self, reason: str) -> None:
        self._inbox.put(EndOfChannel(reason))

    # thread side ----------------------------------------------------------
    def _send_message(self, payload: bytes) -> None:
        future = asyncio.run_coroutine_threadsafe(self._sender(payload), self._loop)
        try:
            future.result(self._timeout_s)
        except TimeoutError:
            future.cancel()
            raise ChannelError(f"could not send within {self._timeout_s} s") from None
        except Exception as exc:
            raise ChannelError(f"send failed: {exc}") from exc

    def _flush(self) -> None:
        return None

    def _recv_message(self, max_bytes: int) -> bytes:
        return take_message(self._inbox, timeout_s=self._timeout_s, max_bytes=max_bytes)


def read_exact(
    sock: socket.socket,
    n: int,
    *,
    closed: str = "the peer closed the connection",
    failed: str = "receive failed",
) -> bytes:
    """Exactly ``n`` bytes from a stream socket, or ChannelError (EOF, timeout, error)."""
    buf = bytearray(n)
    view = memoryview(buf)
    got = 0
    try:
        while got < n:
            k = sock.recv_into(view[got:], n - got)
            if k == 0:
                raise ChannelError(closed)
            got += k
    except OSError as exc:  # includes socket.timeout
        raise ChannelError(f"{failed}: {exc}") from exc
    return bytes(buf)


class SocketChannel(Channel):
    """Length-prefixed messages over a connected stream socket (benchmarks, selftest)."""

    def __init__(
        self,
        sock: socket.socket,
        *,
        timeout_s: float = 300.0,
        max_message: int = DEFAULT_MAX_MESSAGE,
    ) -> None:
        super().__init__(max_message=max_message)
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.settimeout(timeout_s)
        self._sock = sock

    def _send_message(self, payload: bytes) -> None:
        # Written at once: a party that sends last and returns needs no flush.
        try:
            self._sock.sendall(_LEN.pack(len(payload)))
            self._sock.sendall(payload)
        except OSError as exc:
            raise ChannelError(f"send failed: {exc}") from exc

    def _flush(self) -> None:
        return None

    def _read_exact(self, n: int) -> bytes:
        return read_exact(self._sock, n)

    def _recv_message(self, max_bytes: int) -> bytes:
        (length,) = _LEN.unpack(self._read_exact(_LEN.size))
        if length > max_bytes:
            raise ChannelError(f"peer announced {length} bytes, above the {max_bytes} bound")
        return self._read_exact(length)

    def close(self) -> None:
        self._sock.close()
