"""Wire protocol v1: sans-IO framing and state machine, plus the modules that do I/O.

``framing``, ``events``, ``connection`` and ``messages`` never touch a socket;
import ``secfepas_sdk.protocol.transport`` for the asyncio/TLS side and
``secfepas_sdk.protocol.pump`` for the loop that feeds SNNI messages.
"""

from secfepas_sdk.protocol.connection import NEED_DATA, Connection, NeedData, Role, State
from secfepas_sdk.protocol.events import (
    OT_EXTENSIONS,
    PROTOCOL_VERSIONS,
    SUITE_CHEETAH_FERRET_V5,
    SUITE_CHEETAH_V3,
    SUITES,
    ClientHello,
    Close,
    ConnectionClosed,
    Data,
    Error,
    ErrorCode,
    Event,
    InferenceBegin,
    InferenceEnd,
    ServerHello,
)
from secfepas_sdk.protocol.framing import FrameLimits, FrameType

__all__ = [
    "NEED_DATA",
    "OT_EXTENSIONS",
    "PROTOCOL_VERSIONS",
    "SUITES",
    "SUITE_CHEETAH_FERRET_V5",
    "SUITE_CHEETAH_V3",
    "ClientHello",
    "Close",
    "Connection",
    "ConnectionClosed",
    "Data",
    "Error",
    "ErrorCode",
    "Event",
    "FrameLimits",
    "FrameType",
    "InferenceBegin",
    "InferenceEnd",
    "NeedData",
    "Role",
    "ServerHello",
    "State",
]
