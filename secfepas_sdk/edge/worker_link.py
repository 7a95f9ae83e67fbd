"""The link between a session (event loop) and its worker process: framing over a socketpair.

Each frame is ``tag (1 byte) + length (8 bytes, big-endian) + payload``. Both
ends are this package's own code, but the length is still bounded so that a
bug can never make either side allocate without limit.
"""

from __future__ import annotations

import struct

__all__ = ["BEGIN", "DATA", "END", "FAIL", "HEADER", "QUIT", "READY", "TAGS", "frame"]

HEADER = struct.Struct("!cQ")
READY = b"R"  # worker -> loop: model loaded, session may start
BEGIN = b"B"  # loop -> worker: run one inference; payload b"\x01" = run setup first
DATA = b"D"  # both ways: one whole SNNI message
END = b"E"  # worker -> loop: the edge's half of the inference is done
FAIL = b"X"  # worker -> loop: the inference failed; payload = short UTF-8 reason
QUIT = b"Q"  # loop -> worker: the session is over
TAGS = frozenset({READY, BEGIN, DATA, END, FAIL, QUIT})


def frame(tag: bytes, payload: bytes = b"") -> bytes:
    return HEADER.pack(tag, len(payload)) + payload
