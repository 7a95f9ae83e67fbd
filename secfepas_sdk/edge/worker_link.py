"""The link between a session (event loop) and its worker process: framing over a socketpair.

Each frame is ``tag (1 byte) + length (8 bytes, big-endian) + payload``. Both
ends are this package's own code, but the length is still bounded so that a
bug can never make either side allocate without limit.
"""

from __future__ import annotations

import struct

__all__ = [
    "BEGIN",
    "CHUNK",
    "DATA",
    "END",
    "FAIL",
    "HEADER",
    "LOST",
    "MORE",
    "QUIT",
    "READY",
    "REFUSED",
    "TAGS",
    "frame",
]

HEADER = struct.Struct("!cQ")
READY = b"R"  # worker -> loop: model loaded, session may start
BEGIN = b"B"  # loop -> worker: run one inference; payload b"\x01" = run setup first
DATA = b"D"  # both ways: the last (or only) chunk of one SNNI message
MORE = b"M"  # both ways: a chunk of an SNNI message, more chunks follow
END = b"E"  # worker -> loop: the edge's half of the inference is done
FAIL = b"X"  # worker -> loop: the inference failed; payload = short UTF-8 reason
# worker -> loop: the camera's SNNI data broke the suite (a degenerate key, a wrong
# size); payload = short UTF-8 reason, our own text, which the camera may be told
REFUSED = b"K"
LOST = b"L"  # worker -> loop: one of its HE block processes died; payload = short reason
QUIT = b"Q"  # loop -> worker: the session is over
TAGS = frozenset({READY, BEGIN, DATA, MORE, END, FAIL, REFUSED, LOST, QUIT})

# Messages cross the link in chunks, never whole, so the event loop holds at most
# one chunk (or one camera DATA frame) per session and direction, and the worker
# bounds each message by what the current protocol step expects
# (Channel.recv(max_bytes)) before it has buffered more than that.
CHUNK = 1 << 20


def frame(tag: bytes, payload: bytes = b"") -> bytes:
    return HEADER.pack(tag, len(payload)) + payload
