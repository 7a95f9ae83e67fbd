"""The exception hierarchy: one root, one branch per layer.

Callers catch :class:`SecfepasError` to handle anything the SDK raises on
purpose; the branches let them tell a bad video file from a misbehaving peer.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "ConnectionLostError",
    "DetectionError",
    "InvalidValueError",
    "LocalProtocolError",
    "MissingExtraError",
    "ModelPackageError",
    "PeerError",
    "PermanentSinkError",
    "ProtocolError",
    "RemoteProtocolError",
    "SecfepasError",
    "SinkError",
    "SnniError",
    "SourceError",
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
    """An optional dependency is missing; the message names the pip command."""

    def __init__(self, module: str, extra: str) -> None:
        self.module = module
        self.extra = extra
        super().__init__(
            f"this feature needs the optional module {module!r}; "
            f"install it with: pip install 'secfepas-sdk[{extra}]'"
        )


class SourceError(SecfepasError):
    """A frame source cannot be opened or read. The message names the source."""


class DetectionError(SecfepasError):
    """The face detector cannot be loaded or run."""


class SnniError(SecfepasError):
    """Secure inference failed: bad shapes, parameters, or a peer's bad data."""


class ModelPackageError(SecfepasError):
    """A model package is missing, tampered with, or does not match its peer."""


class ProtocolError(SecfepasError):
    """Wire-protocol failure, carrying a machine-readable error code."""

    def __init__(self, message: str, code: str = "protocol_error") -> None:
        super().__init__(message)
        self.code = code


class LocalProtocolError(ProtocolError):
    """Our own caller misused the protocol API (a bug on this side)."""


class RemoteProtocolError(ProtocolError):
    """The peer sent bytes that break the protocol; the session must close."""


class PeerError(ProtocolError):
    """The peer ended the session with an Error frame (e.g. ``busy``); ``code`` is its code."""


class ConnectionLostError(ProtocolError):
    """The transport failed (refused, reset, TLS failure, timeout); a retry may succeed."""


class SinkError(SecfepasError):
    """An alert sink failed to deliver."""


class TransientSinkError(SinkError):
    """Delivery may succeed later (broker down, timeout, HTTP 5xx): retry."""


class PermanentSinkError(SinkError):
    """Delivery will never succeed (HTTP 4xx, invalid alert): dead-letter it."""
