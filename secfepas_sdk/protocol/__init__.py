"""Wire protocol v1: sans-IO framing and state machine, plus the one module
(``transport``) that does I/O.

``frames``, ``events`` and ``connection`` never touch a socket; import
``secfepas_sdk.protocol.transport`` for the asyncio/TLS side.
"""

from secfepas_sdk.protocol.connection import NEED_DATA, Connection, NeedData, Role, State
from secfepas_sdk.protocol.events import (
    PROTOCOL_VERSIONS,
    SUITE_CHEETAH_V1,
    ClientHello,
    Close,
    ConnectionClosed,
    Data,
    Error,
    Event,
    InferenceBegin,
    InferenceEnd,
    ServerHello,
)
from secfepas_sdk.protocol.frames import FrameLimits, FrameType

__all__ = [
    "NEED_DATA",
    "PROTOCOL_VERSIONS",
    "SUITE_CHEETAH_V1",
    "ClientHello",
    "Close",
    "Connection",
    "ConnectionClosed",
    "Data",
    "Error",
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
