"""Opening a camera session: TLS, the hellos, and the checks on what the edge offers.

The edge's ServerHello is peer input: its model id must be the one asked for,
its plan must parse and match the manifest's plan hash, and, when the operator
installed the model's public package, both must equal it. Only then does the
camera build its runtime; nothing derived from pixels has been sent yet.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import ssl
from dataclasses import dataclass
from typing import TYPE_CHECKING

from secfepas_sdk.camera.certcheck import own_certificate_problem
from secfepas_sdk.camera.pinning import check_pinned
from secfepas_sdk.errors import (
    ConnectionLostError,
    ErrorCode,
    ModelPackageError,
    ProtocolError,
    RemoteProtocolError,
    SessionError,
    TlsRefusedError,
)
from secfepas_sdk.logsafe import safe_text
from secfepas_sdk.protocol.events import (
    PROTOCOL_VERSIONS,
    SUITES,
    ClientHello,
    Error,
    ServerHello,
    suite_ot_extension,
)
from secfepas_sdk.protocol.framing import FrameLimits
from secfepas_sdk.protocol.pump import peer_error
from secfepas_sdk.protocol.tls_failures import peer_alert
from secfepas_sdk.protocol.transport import FramedStream, TlsFiles, open_client

if TYPE_CHECKING:
    from secfepas_sdk.models.package import PublicModel
    from secfepas_sdk.snni.plan import Plan
    from secfepas_sdk.snni.runtime import ClientRuntime

__all__ = ["Session", "checked_plan", "open_session"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Session:
    """An open session: the stream, the edge's hello and the camera's runtime for its plan."""

    stream: FramedStream
    hello: ServerHello
    runtime: ClientRuntime

    @property
    def ot_extension(self) -> str:
        """The OT extension of the suite the edge chose (one the camera offered)."""
        return suite_ot_extension(self.hello.suite)


def checked_plan(hello: ServerHello, model_id: str, pinned: PublicModel | None) -> Plan:
    """The edge's plan, once it is the model asked for, intact, and (if pinned) ours."""
    from secfepas_sdk.errors import SnniError
    from secfepas_sdk.snni.plan import Plan

    offered = hello.manifest.get("model_id")
    if offered != model_id:
        raise ModelPackageError(f"the edge offered model {offered!r}, not {model_id!r}")
    try:
        plan = Plan.from_dict(hello.plan)
    except SnniError as exc:
        raise RemoteProtocolError(
            f"the edge's plan is invalid: {exc}", ErrorCode.BAD_MESSAGE
        ) from exc
    hashes = hello.manifest.get("hashes")
    want = hashes.get("plan.json") if isinstance(hashes, dict) else None
    got = hashlib.sha256(plan.to_json().encode("utf-8")).hexdigest()
    if want != got:
        raise ModelPackageError("the edge's plan does not match its manifest's plan hash")
    if pinned is not None:
        check_pinned(pinned, hello.manifest, plan)
    return plan


async def open_session(
    host: str,
    port: int,
    ctx: ssl.SSLContext,
    *,
    tls: TlsFiles,
    model_id: str,
    pinned: PublicModel | None,
    server_name: str | None,
    limits: FrameLimits,
    connect_s: float,
    hello_s: float,
    frame_s: float,
    suites: tuple[str, ...] = SUITES[:1],
) -> Session:
    """Connect, say hello, check the edge's answer and build the runtime (one attempt).
    ``suites`` are the camera's proposal, in its order of preference."""
    from secfepas_sdk.snni.runtime import ClientRuntime

    stream = await open_client(
        host, port, ctx, server_name=server_name, limits=limits, timeout=connect_s
    )
    try:
        await stream.send(ClientHello(versions=PROTOCOL_VERSIONS, model_id=model_id, suites=suites))
        try:
            event = await stream.next_event(hello_s, frame_timeout=frame_s)
        except RemoteProtocolError as exc:
            if exc.code == ErrorCode.UNEXPECTED_EOF:  # TLS 1.3: how a refused certificate looks
                raise _refused(tls) from exc
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
            runtime = ClientRuntime(checked_plan(event, model_id, pinned))
        except ModelPackageError as exc:
            with contextlib.suppress(ProtocolError, SessionError):
                await stream.send(Error(code=ErrorCode.MODEL_MISMATCH, message=str(exc)[:1000]))
            raise
    except BaseException:
        await stream.aclose()
        raise
    log.info(
        "session %s with edge %s (model %s, suite %s)",
        safe_text(event.session_id),
        safe_text(stream.peer),
        model_id,
        event.suite,
    )
    return Session(stream, event, runtime)


def _refused(tls: TlsFiles) -> TlsRefusedError:
    """The edge closed the connection right after the handshake, before any reply.

    An edge that is busy or stopping says so in an Error frame; a bare close
    at this point is TLS 1.3's refusal of our certificate (checked after our
    side finished the handshake; asyncio sends no alert). Permanent.
    """
    why = own_certificate_problem(tls.cert, tls.ca) or (
        "the edge's log says why (a CA it does not trust, or a revoked certificate)"
    )
    return TlsRefusedError(f"the edge refused our certificate ({tls.cert}): {why}")
