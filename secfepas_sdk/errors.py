"""The exception hierarchy: one root, one branch per layer.

Callers catch :class:`SecfepasError` to handle anything the SDK raises on
purpose; the branches let them tell a bad video file from a misbehaving peer.
"""

from __future__ import annotations

import enum

__all__ = [
    "ConfigError",
    "ConnectionLostError",
    "DetectionError",
    "ErrorCode",
    "InvalidValueError",
    "LocalProtocolError",
    "MissingExtraError",
    "ModelPackageError",
    "NegotiationError",
    "PeerDataError",
    "PeerError",
    "PermanentSinkError",
    "ProtocolError",
    "RemoteProtocolError",
    "SecfepasError",
    "SessionError",
    "SinkError",
    "SinkPluginError",
    "SnniError",
    "SourceError",
    "TlsRefusedError",
    "TransientSinkError",
]


class SecfepasError(Exception):
    """Root of every error the SDK raises deliberately."""


class ConfigError(SecfepasError):
    """Settings or arguments that cannot work (bad path, bad value)."""


class InvalidValueError(SecfepasError, ValueError):
    """A value type was built with a field that cannot be right (shape, range, kind).

    It is also a ``ValueError``, so code that caught the built-in one keeps working.
    """


class MissingExtraError(SecfepasError, ImportError):
    """An optional dependency is missing; the message names the pip command.

    secfepas-sdk is not on a package index, so the command installs the extra from a
    clone of the repository or from a wheel built by tools/build_wheels.sh.
    """

    def __init__(self, module: str, extra: str) -> None:
        self.module = module
        self.extra = extra
        super().__init__(
            f"this needs {module} from the secfepas-sdk[{extra}] extra; install it with "
            f"pip install '.[{extra}]' in the repository, or "
            f"pip install './dist/secfepas_sdk-*.whl[{extra}]' (README: Installing)"
        )


class SourceError(SecfepasError):
    """A frame source cannot be opened or read. The message names the source."""


class DetectionError(SecfepasError):
    """The face detector cannot be loaded or run."""


class SnniError(SecfepasError):
    """Secure inference failed: bad shapes, parameters, or a peer's bad data."""


class PeerDataError(SnniError):
    """The peer's SNNI data break the suite (wrong size, out of range, a degenerate
    key): refused, and the edge ends the session with ``bad_message``."""


class ModelPackageError(SecfepasError):
    """A model package is missing, tampered with, or does not match its peer."""


class ErrorCode(enum.StrEnum):
    """Machine-readable codes of protocol and session failures.

    The first group may travel in an ``Error`` frame (docs/protocol.md §6); the
    local-only group names failures that never go on the wire.
    """

    BAD_MAGIC = "bad_magic"
    UNSUPPORTED_VERSION = "unsupported_version"
    UNKNOWN_TYPE = "unknown_type"
    BAD_FLAGS = "bad_flags"
    FRAME_TOO_LARGE = "frame_too_large"
    BAD_JSON = "bad_json"
    BAD_MESSAGE = "bad_message"
    WRONG_STATE = "wrong_state"
    UNEXPECTED_EOF = "unexpected_eof"
    VERSION_MISMATCH = "version_mismatch"
    NO_COMMON_SUITE = "no_common_suite"
    UNKNOWN_MODEL = "unknown_model"
    MODEL_MISMATCH = "model_mismatch"
    BUSY = "busy"
    TIMEOUT = "timeout"
    SHUTTING_DOWN = "shutting_down"
    INFERENCE_FAILED = "inference_failed"
    CANCELLED = "cancelled"
    INTERNAL = "internal"
    # local only: never sent in an Error frame
    PROTOCOL_ERROR = "protocol_error"
    LOCAL_MISUSE = "local_misuse"
    CLOSED = "closed"
    CONNECTION_LOST = "connection_lost"
    TLS_REFUSED = "tls_refused"

    @property
    def on_wire(self) -> bool:
        """May this code be sent to (and accepted from) the peer?"""
        return self not in _LOCAL_ONLY


_LOCAL_ONLY = frozenset(
    {
        ErrorCode.PROTOCOL_ERROR,
        ErrorCode.LOCAL_MISUSE,
        ErrorCode.CLOSED,
        ErrorCode.CONNECTION_LOST,
        ErrorCode.TLS_REFUSED,
    }
)


class _Coded(SecfepasError):
    def __init__(self, message: str, code: ErrorCode | str = ErrorCode.PROTOCOL_ERROR) -> None:
        super().__init__(message)
        self.code = ErrorCode(code)


class ProtocolError(_Coded):
    """The wire protocol was broken; ``code`` says how.

    Only protocol violations are ProtocolErrors: ``except ProtocolError`` means
    bad bytes (Remote) or a misused API (Local), never a network failure.
    """


class LocalProtocolError(ProtocolError):
    """Our own caller misused the protocol API (a bug on this side)."""


class RemoteProtocolError(ProtocolError):
    """The peer sent bytes that break the protocol; the session must close."""


class NegotiationError(RemoteProtocolError):
    """The hellos share no protocol version or suite (``version_mismatch``,
    ``no_common_suite``): a well-formed but incompatible peer."""


class SessionError(_Coded):
    """The session ended for a reason outside the bytes: the peer said so, or
    the transport failed. ``code`` says which."""


class PeerError(SessionError):
    """The peer ended the session with an Error frame (e.g. ``busy``); ``code`` is its code."""


class ConnectionLostError(SessionError):
    """The transport failed (refused, reset, TLS failure, timeout); a retry may succeed."""


class SinkPluginError(ConfigError):
    """An alert sink plugin failed to load or to build its sink; names the distribution."""

    def __init__(self, message: str, distribution: str) -> None:
        super().__init__(message)
        self.distribution = distribution


class TlsRefusedError(ConfigError):
    """A TLS certificate check failed, on either side: permanent, never retried.

    The certificates do not fit (another CA, expired, wrong name), so only a
    configuration change helps: it is a :class:`ConfigError`, which the camera
    pipeline does not take for a lost link, and it stops at once. The message
    says which side refused and why; ``code`` is ``tls_refused`` (local only).
    """

    code = ErrorCode.TLS_REFUSED


class SinkError(SecfepasError):
    """An alert sink failed to deliver."""


class TransientSinkError(SinkError):
    """Delivery may succeed later (broker down, timeout, HTTP 5xx): retry."""


class PermanentSinkError(SinkError):
    """Delivery will never succeed (HTTP 4xx, invalid alert): dead-letter it."""
