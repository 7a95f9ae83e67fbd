"""Typed protocol events: what the state machine consumes and produces.

Each event is a frozen value that validates itself when built, so a bad
event can neither be sent by our caller nor come out of the parser. Control
events map one-to-one onto a pydantic wire model (the JSON schema of
docs/protocol.md); ``Data`` carries opaque SNNI bytes and never touches JSON.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, StringConstraints, ValidationError

from secfepas_sdk.errors import InvalidValueError
from secfepas_sdk.protocol.frames import FrameType

__all__ = [
    "PROTOCOL_VERSIONS",
    "SUITE_CHEETAH_V1",
    "ClientHello",
    "Close",
    "ConnectionClosed",
    "ControlEvent",
    "Data",
    "Error",
    "ErrorCode",
    "Event",
    "InferenceBegin",
    "InferenceEnd",
    "ServerHello",
    "decode_control",
    "encode_control",
]

PROTOCOL_VERSIONS: tuple[int, ...] = (1,)
"""Session protocol versions this implementation speaks (negotiated in the hello)."""

SUITE_CHEETAH_V1 = "snni-cheetah-v1"
"""Secure-inference suite: BFV linear layers + OT non-linear layers, as in snni.runtime."""

ErrorCode = Literal[
    "bad_magic",
    "unsupported_version",
    "unknown_type",
    "bad_flags",
    "frame_too_large",
    "bad_json",
    "bad_message",
    "wrong_state",
    "unexpected_eof",
    "version_mismatch",
    "no_common_suite",
    "unknown_model",
    "model_mismatch",
    "busy",
    "timeout",
    "shutting_down",
    "inference_failed",
    "cancelled",
    "internal",
]
ERROR_CODES: frozenset[str] = frozenset(ErrorCode.__args__)  # type: ignore[attr-defined]

_Token = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$")]
_Text = Annotated[str, StringConstraints(max_length=1024)]
_Seq = Annotated[int, Field(ge=0, le=(1 << 53))]
_Version = Annotated[int, Field(ge=1, le=255)]


class _Wire(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class _ClientHelloWire(_Wire):
    versions: Annotated[list[_Version], Field(min_length=1, max_length=16)]
    model_id: _Token
    suites: Annotated[list[_Token], Field(min_length=1, max_length=16)]


class _ServerHelloWire(_Wire):
    version: _Version
    suite: _Token
    session_id: _Token
    manifest: dict[str, JsonValue]
    plan: dict[str, JsonValue]


class _InferenceBeginWire(_Wire):
    seq: _Seq
    setup: bool


class _InferenceEndWire(_Wire):
    seq: _Seq


class _ErrorWire(_Wire):
    code: ErrorCode
    message: _Text


class _CloseWire(_Wire):
    reason: _Text


def _check(model: type[_Wire], fields: dict[str, Any]) -> None:
    try:
        model.model_validate(fields)
    except ValidationError as exc:
        raise InvalidValueError(f"invalid {model.__name__.strip('_')[:-4]}: {exc}") from None


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientHello:
    """Camera → edge: protocol versions and suites it speaks, and the model it wants."""

    versions: tuple[int, ...]
    model_id: str
    suites: tuple[str, ...]
    frame_type: ClassVar[FrameType] = FrameType.CLIENT_HELLO
    wire: ClassVar[type[_Wire]] = _ClientHelloWire

    def __post_init__(self) -> None:
        _check(self.wire, _fields(self))


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerHello:
    """Edge → camera: the chosen version and suite, the model's public manifest and plan."""

    version: int
    suite: str
    session_id: str
    manifest: dict[str, Any] = field(hash=False)
    plan: dict[str, Any] = field(hash=False)
    frame_type: ClassVar[FrameType] = FrameType.SERVER_HELLO
    wire: ClassVar[type[_Wire]] = _ServerHelloWire

    def __post_init__(self) -> None:
        _check(self.wire, _fields(self))


@dataclass(frozen=True, slots=True, kw_only=True)
class InferenceBegin:
    """Camera → edge: one inference starts; ``setup`` asks for the once-per-session setup first."""

    seq: int
    setup: bool
    frame_type: ClassVar[FrameType] = FrameType.INFERENCE_BEGIN
    wire: ClassVar[type[_Wire]] = _InferenceBeginWire

    def __post_init__(self) -> None:
        _check(self.wire, _fields(self))


@dataclass(frozen=True, slots=True, kw_only=True)
class InferenceEnd:
    """Edge → camera: the edge's half of inference ``seq`` is complete."""

    seq: int
    frame_type: ClassVar[FrameType] = FrameType.INFERENCE_END
    wire: ClassVar[type[_Wire]] = _InferenceEndWire

    def __post_init__(self) -> None:
        _check(self.wire, _fields(self))


@dataclass(frozen=True, slots=True, kw_only=True)
class Error:
    """Either side: a fatal error; the session is over once it is sent or received."""

    code: str
    message: str
    frame_type: ClassVar[FrameType] = FrameType.ERROR
    wire: ClassVar[type[_Wire]] = _ErrorWire

    def __post_init__(self) -> None:
        _check(self.wire, _fields(self))


@dataclass(frozen=True, slots=True, kw_only=True)
class Close:
    """Either side, between inferences: orderly end of the session."""

    reason: str = ""
    frame_type: ClassVar[FrameType] = FrameType.CLOSE
    wire: ClassVar[type[_Wire]] = _CloseWire

    def __post_init__(self) -> None:
        _check(self.wire, _fields(self))


@dataclass(frozen=True, slots=True, kw_only=True)
class Data:
    """Either side, during an inference: one chunk of an SNNI message (opaque bytes).

    ``more`` is set on every chunk but the last of a message longer than one frame.
    """

    payload: bytes
    more: bool = False
    frame_type: ClassVar[FrameType] = FrameType.DATA

    def __post_init__(self) -> None:
        if not isinstance(self.payload, bytes):
            raise InvalidValueError("Data.payload must be bytes")
        if not isinstance(self.more, bool):
            raise InvalidValueError("Data.more must be a bool")

    def __repr__(self) -> str:  # never print SNNI bytes (shares, ciphertexts)
        return f"Data(<{len(self.payload)} bytes>, more={self.more})"


@dataclass(frozen=True, slots=True)
class ConnectionClosed:
    """Not a wire message: the peer closed the byte stream after an orderly end."""


ControlEvent = ClientHello | ServerHello | InferenceBegin | InferenceEnd | Error | Close
Event = ControlEvent | Data | ConnectionClosed

_BY_TYPE: dict[FrameType, type[ControlEvent]] = {
    cls.frame_type: cls
    for cls in (ClientHello, ServerHello, InferenceBegin, InferenceEnd, Error, Close)
}


def _fields(event: ControlEvent) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in event.wire.model_fields:
        value = getattr(event, name)
        out[name] = list(value) if isinstance(value, tuple) else value
    return out


def encode_control(event: ControlEvent) -> bytes:
    """Canonical JSON: UTF-8, sorted keys, no whitespace, ASCII escapes, no NaN."""
    return json.dumps(
        _fields(event), sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    ).encode("ascii")


def decode_control(frame_type: FrameType, payload: bytes) -> ControlEvent:
    """Parse and validate a control payload. Raises ValueError (bad JSON or schema)."""
    cls = _BY_TYPE[frame_type]
    wire = cls.wire.model_validate_json(payload)
    values: dict[str, Any] = {}
    for name in cls.wire.model_fields:
        value = getattr(wire, name)
        values[name] = tuple(value) if name in ("versions", "suites") else value
    return cls(**values)
