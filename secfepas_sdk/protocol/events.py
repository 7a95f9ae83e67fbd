"""Typed protocol events: what the state machine consumes and produces.

Each event is one frozen dataclass whose field annotations are its schema: a
bad event can neither be built by our caller (LocalProtocolError) nor come
out of the parser (RemoteProtocolError). The pydantic model that parses a
control payload's JSON is generated from those annotations, never written
twice. ``Data`` carries opaque SNNI bytes and never touches JSON.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from typing import Annotated, Any, ClassVar, TypeVar, dataclass_transform, get_type_hints

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    StringConstraints,
    ValidationError,
    create_model,
)

from secfepas_sdk.errors import ErrorCode, LocalProtocolError
from secfepas_sdk.protocol.framing import FrameType

__all__ = [
    "ERROR_CODES",
    "OT_EXTENSIONS",
    "PROTOCOL_VERSIONS",
    "SUITES",
    "SUITE_CHEETAH_FERRET_V5",
    "SUITE_CHEETAH_V3",
    "SUITE_OT_EXTENSIONS",
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
    "suite_ot_extension",
    "suites_for",
]

PROTOCOL_VERSIONS: tuple[int, ...] = (1,)
"""Session protocol versions this implementation speaks (negotiated in the hello)."""

SUITE_CHEETAH_V3 = "snni-cheetah-v3"
"""Secure-inference suite: BFV linear layers + OT non-linear layers, as in snni.runtime,
with SoftSpokenOT (k = 4) as the OT extension. v2: the edge seeds the camera's HE
public key (v1 took the camera's whole key). v3: the comparisons' AND-tree openings
travel as a relay and the truncation's OT runs edge-to-camera (fewer rounds, the same
bytes; docs/snni-core.md "Fewer rounds"), so a v2 peer would fall out of step."""

SUITE_CHEETAH_FERRET_V5 = "snni-cheetah-ferret-v5"
"""The same suite with Ferret silent OT (bootstrapped from SoftSpokenOT k = 4). v4: a
capped ReLU (ReLU6) whose two comparisons run in one call has the edge, not the camera,
lower its share by the cap, so both comparisons share the camera's leaf OTs where the
digit layout allows (``NonlinearEngine.relu_truncate_capped``); a v3 peer would lower
twice or not at all. v5: a truncation whose input the plan bounds in
[-2^(l-2), 2^(l-2)) (``snni.schedule.bounded_truncations``) reads the wrap from the
shares' top bits in one OT, with no comparison; a v4 peer would still compare."""

SUITE_OT_EXTENSIONS: dict[str, str] = {
    SUITE_CHEETAH_FERRET_V5: "ferret",
    SUITE_CHEETAH_V3: "softspoken",
}
"""The OT extension each suite runs (``snni.ot.extension`` names), in order of
preference (Ferret, the library default, first); a suite's meaning never changes, a
new variant is a new suite."""

OT_EXTENSIONS: tuple[str, ...] = tuple(SUITE_OT_EXTENSIONS.values())
"""The OT extensions a camera may propose and an edge may allow, preferred first."""

SUITES: tuple[str, ...] = tuple(SUITE_OT_EXTENSIONS)
"""Secure-inference suites this implementation speaks, in order of preference."""


def suites_for(ot_extensions: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """The suites of these OT extensions, in the same order (a camera's proposal, an
    edge's allowed set). Raises ValueError naming the choices for an unknown one."""
    by_ot = {ot: suite for suite, ot in SUITE_OT_EXTENSIONS.items()}
    if not 1 <= len(ot_extensions) <= len(by_ot) or len(set(ot_extensions)) != len(ot_extensions):
        raise ValueError(
            f"give 1 to {len(by_ot)} distinct OT extensions, got {list(ot_extensions)}"
        )
    unknown = [ot for ot in ot_extensions if ot not in by_ot]
    if unknown:
        raise ValueError(
            f"unknown OT extension {unknown[0]!r}; expected one of {', '.join(OT_EXTENSIONS)}"
        )
    return tuple(by_ot[ot] for ot in ot_extensions)


def suite_ot_extension(suite: str) -> str:
    """The OT extension a negotiated suite runs (KeyError for a suite we do not speak)."""
    return SUITE_OT_EXTENSIONS[suite]


ERROR_CODES: frozenset[str] = frozenset(code.value for code in ErrorCode)
"""Every code a ProtocolError or an Error event can carry (wire and local-only)."""


def _wire_code(code: ErrorCode) -> ErrorCode:
    if not code.on_wire:
        raise ValueError(f"{code.value!r} is a local-only code")
    return code


class _JsonObject:
    """Annotation marker: a JSON object (validated as such, typed as a plain dict)."""


_Token = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$")]
_Text = Annotated[str, StringConstraints(max_length=1024)]
_Seq = Annotated[int, Field(ge=0, le=(1 << 53))]
_Version = Annotated[int, Field(ge=1, le=255)]
_WireCode = Annotated[ErrorCode, AfterValidator(_wire_code)]
_Object = Annotated[dict[str, Any], _JsonObject]
_WIRE_CONFIG = ConfigDict(extra="forbid", strict=True, frozen=True)

_E = TypeVar("_E")
_BY_TYPE: dict[FrameType, type[ControlEvent]] = {}


@dataclass_transform(frozen_default=True, kw_only_default=True)
def _control(frame_type: FrameType) -> Callable[[type[_E]], type[_E]]:
    """Make a control event: a frozen dataclass plus the JSON schema its fields imply."""

    def wrap(cls: type[_E]) -> type[_E]:
        made = dataclasses.dataclass(frozen=True, slots=True, kw_only=True)(cls)
        hints = get_type_hints(made, include_extras=True)
        fields: dict[str, Any] = {}
        for f in dataclasses.fields(made):  # type: ignore[arg-type]
            hint = hints[f.name]
            if _JsonObject in getattr(hint, "__metadata__", ()):
                hint = dict[str, JsonValue]
            default = ... if f.default is dataclasses.MISSING else f.default
            fields[f.name] = (hint, default)
        made.frame_type = frame_type  # type: ignore[attr-defined]
        made.schema = create_model(  # type: ignore[attr-defined]
            f"{cls.__name__}Payload", __config__=_WIRE_CONFIG, **fields
        )
        _BY_TYPE[frame_type] = made  # type: ignore[assignment]
        return made

    return wrap


class _Validated:
    """Shared by control events: validate every field against the generated schema."""

    __slots__ = ()
    frame_type: ClassVar[FrameType]
    schema: ClassVar[type[BaseModel]]

    def __post_init__(self) -> None:
        try:
            self.schema.model_validate(_fields(self))
        except ValidationError as exc:
            raise LocalProtocolError(
                f"invalid {type(self).__name__}: {first_lines(exc)}", ErrorCode.BAD_MESSAGE
            ) from None


@_control(FrameType.CLIENT_HELLO)
class ClientHello(_Validated):
    """Camera → edge: protocol versions and suites it speaks, and the model it wants."""

    versions: Annotated[tuple[_Version, ...], Field(min_length=1, max_length=16)]
    model_id: _Token
    suites: Annotated[tuple[_Token, ...], Field(min_length=1, max_length=16)]


@_control(FrameType.SERVER_HELLO)
class ServerHello(_Validated):
    """Edge → camera: the chosen version and suite, the model's public manifest and plan."""

    version: _Version
    suite: _Token
    session_id: _Token
    manifest: _Object = dataclasses.field(hash=False)
    plan: _Object = dataclasses.field(hash=False)


@_control(FrameType.INFERENCE_BEGIN)
class InferenceBegin(_Validated):
    """Camera → edge: one inference starts; ``setup`` asks for the once-per-session setup first."""

    seq: _Seq
    setup: bool


@_control(FrameType.INFERENCE_END)
class InferenceEnd(_Validated):
    """Edge → camera: the edge's half of inference ``seq`` is complete."""

    seq: _Seq


@_control(FrameType.ERROR)
class Error(_Validated):
    """Either side: a fatal error; the session is over once it is sent or received.

    ``code`` is a wire code of :class:`ErrorCode` (a plain string naming one is
    accepted and converted).
    """

    code: _WireCode
    message: _Text

    def __post_init__(self) -> None:
        if not isinstance(self.code, ErrorCode):
            try:
                object.__setattr__(self, "code", ErrorCode(self.code))
            except ValueError:
                raise LocalProtocolError(
                    f"invalid Error: unknown code {self.code!r}", ErrorCode.BAD_MESSAGE
                ) from None
        _Validated.__post_init__(self)


@_control(FrameType.CLOSE)
class Close(_Validated):
    """Either side, between inferences: orderly end of the session."""

    reason: _Text = ""


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Data:
    """Either side, during an inference: one chunk of an SNNI message (opaque bytes).

    ``more`` is set on every chunk but the last of a message longer than one frame.
    """

    payload: bytes
    more: bool = False
    frame_type: ClassVar[FrameType] = FrameType.DATA

    def __post_init__(self) -> None:
        if not isinstance(self.payload, bytes):
            raise LocalProtocolError("Data.payload must be bytes", ErrorCode.BAD_MESSAGE)
        if not isinstance(self.more, bool):
            raise LocalProtocolError("Data.more must be a bool", ErrorCode.BAD_MESSAGE)

    def __repr__(self) -> str:  # never print SNNI bytes (shares, ciphertexts)
        return f"Data(<{len(self.payload)} bytes>, more={self.more})"


@dataclasses.dataclass(frozen=True, slots=True)
class ConnectionClosed:
    """Not a wire message: the peer closed the byte stream after an orderly end."""


ControlEvent = ClientHello | ServerHello | InferenceBegin | InferenceEnd | Error | Close
Event = ControlEvent | Data | ConnectionClosed


def _fields(event: object) -> dict[str, Any]:
    return {f.name: getattr(event, f.name) for f in dataclasses.fields(event)}  # type: ignore[arg-type]


def encode_control(event: ControlEvent) -> bytes:
    """Canonical JSON: UTF-8, sorted keys, no whitespace, ASCII escapes, no NaN."""
    values = {k: list(v) if isinstance(v, tuple) else v for k, v in _fields(event).items()}
    return json.dumps(
        values, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    ).encode("ascii")


def decode_control(frame_type: FrameType, payload: bytes) -> ControlEvent:
    """Parse and validate a control payload. Raises pydantic's ValidationError."""
    cls = _BY_TYPE[frame_type]
    parsed = cls.schema.model_validate_json(payload)
    # Validated by the very schema __post_init__ would apply: build without re-checking.
    event = object.__new__(cls)
    for name in type(parsed).model_fields:
        object.__setattr__(event, name, getattr(parsed, name))
    return event


def first_lines(exc: BaseException) -> str:
    """A validation error, short enough for one log line or Error message."""
    text = str(exc).splitlines()
    return " ".join(text[:3])[:300]
