"""Binary framing of wire protocol v1 (wire frames; video frames are camera.frames).

Every frame is a fixed 12-byte big-endian header followed by the payload::

    offset size field
    0      4    magic   b"SFPS"
    4      1    version 1
    5      1    type    FrameType
    6      2    flags   bit 0 = MORE (DATA only: the SNNI message continues)
    8      4    length  payload bytes that follow

The header is checked as soon as its 12 bytes have arrived, so an oversized
length is refused before a single payload byte is buffered.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass

from secfepas_sdk.errors import InvalidValueError, LocalProtocolError, RemoteProtocolError

__all__ = [
    "FLAG_MORE",
    "HEADER",
    "HEADER_SIZE",
    "MAGIC",
    "WIRE_VERSION",
    "FrameHeader",
    "FrameLimits",
    "FrameType",
    "encode_frame",
    "parse_header",
]

MAGIC = b"SFPS"
WIRE_VERSION = 1
HEADER = struct.Struct("!4sBBHI")
HEADER_SIZE = HEADER.size  # 12
FLAG_MORE = 0x0001
_MAX_U32 = 0xFFFFFFFF


class FrameType(enum.IntEnum):
    """Message types; control types carry JSON, DATA carries raw SNNI bytes."""

    CLIENT_HELLO = 0x01
    SERVER_HELLO = 0x02
    INFERENCE_BEGIN = 0x03
    DATA = 0x04
    INFERENCE_END = 0x05
    ERROR = 0x06
    CLOSE = 0x07


@dataclass(frozen=True, slots=True, kw_only=True)
class FrameLimits:
    """Largest payload accepted per frame kind (bytes). Both sides enforce them."""

    max_control: int = 1 << 22  # 4 MiB: a ServerHello carries the public plan
    max_data: int = 1 << 22  # 4 MiB per DATA frame; longer SNNI messages use MORE

    def __post_init__(self) -> None:
        for name in ("max_control", "max_data"):
            value = getattr(self, name)
            if not 1 <= value <= _MAX_U32:
                raise InvalidValueError(f"{name} must be within 1..{_MAX_U32}, got {value}")

    def bound(self, frame_type: FrameType) -> int:
        return self.max_data if frame_type is FrameType.DATA else self.max_control


def _flags_valid(frame_type: FrameType, flags: int) -> bool:
    """Only MORE exists, and only DATA may carry it."""
    return not (flags & ~FLAG_MORE or (flags and frame_type is not FrameType.DATA))


@dataclass(frozen=True, slots=True, kw_only=True)
class FrameHeader:
    frame_type: FrameType
    flags: int
    length: int


def encode_frame(
    frame_type: FrameType, payload: bytes, *, flags: int = 0, limits: FrameLimits
) -> bytes:
    """Header + payload. Raises LocalProtocolError if our own frame is invalid."""
    if not _flags_valid(frame_type, flags):
        raise LocalProtocolError(
            f"flags {flags:#x} are not valid on {frame_type.name}", "bad_flags"
        )
    if len(payload) > limits.bound(frame_type):
        raise LocalProtocolError(
            f"{frame_type.name} payload of {len(payload)} bytes exceeds "
            f"the {limits.bound(frame_type)}-byte limit",
            "frame_too_large",
        )
    return HEADER.pack(MAGIC, WIRE_VERSION, frame_type, flags, len(payload)) + payload


def parse_header(raw: bytes | bytearray | memoryview, limits: FrameLimits) -> FrameHeader:
    """Validate the first HEADER_SIZE bytes received from the peer."""
    magic, version, type_code, flags, length = HEADER.unpack(bytes(raw[:HEADER_SIZE]))
    if magic != MAGIC:
        raise RemoteProtocolError("bad magic: the peer does not speak this protocol", "bad_magic")
    if version != WIRE_VERSION:
        raise RemoteProtocolError(
            f"frame version {version} is not supported (this side speaks {WIRE_VERSION})",
            "unsupported_version",
        )
    try:
        frame_type = FrameType(type_code)
    except ValueError:
        raise RemoteProtocolError(f"unknown frame type {type_code:#04x}", "unknown_type") from None
    if not _flags_valid(frame_type, flags):
        raise RemoteProtocolError(
            f"flags {flags:#x} are not valid on {frame_type.name}", "bad_flags"
        )
    bound = limits.bound(frame_type)
    if length > bound:
        raise RemoteProtocolError(
            f"{frame_type.name} frame announces {length} bytes, above the {bound}-byte limit",
            "frame_too_large",
        )
    return FrameHeader(frame_type=frame_type, flags=flags, length=length)
