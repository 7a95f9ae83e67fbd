"""How HE layer messages frame their ciphertexts: a count, the lengths, the bytes.

Both parties send ciphertexts a chunk at a time (the camera its inputs, the edge its
replies), so that each side works on one chunk while the other makes the next. A
receiver bounds a message by the plan before it buffers it, then splits it into
exactly the count it expects; every length comes from the peer and is checked.
"""

from __future__ import annotations

import struct

import numpy as np

from secfepas_sdk.errors import SnniError

__all__ = ["INPUT_CHUNK", "REPLY_CHUNK", "blobs_bound", "pack_blobs", "unpack_blobs"]

_COUNT = struct.Struct("<I")
REPLY_CHUNK = 16  # replies per message: the client decrypts one chunk while the server computes
INPUT_CHUNK = 16  # inputs per message: the server loads one chunk while the client encrypts on


def pack_blobs(blobs: list[bytes]) -> bytes:
    lengths = np.asarray([len(b) for b in blobs], dtype=np.uint32)
    return _COUNT.pack(len(blobs)) + lengths.tobytes() + b"".join(blobs)


def blobs_bound(count: int, max_each: int) -> int:
    """The largest message :func:`pack_blobs` makes of ``count`` blobs of at most
    ``max_each`` bytes: the bound a receiver applies before buffering it."""
    return _COUNT.size + count * (4 + max_each)


def unpack_blobs(raw: bytes, *, count: int, max_each: int) -> list[bytes]:
    """Split a peer's message into exactly ``count`` blobs of at most ``max_each`` bytes."""
    if len(raw) < _COUNT.size:
        raise SnniError("HE message too short")
    (got,) = _COUNT.unpack_from(raw)
    if got != count:
        raise SnniError(f"expected {count} ciphertexts, peer sent {got}")
    head = _COUNT.size + 4 * count
    if len(raw) < head:
        raise SnniError("HE message truncated")
    lengths = np.frombuffer(raw, dtype=np.uint32, count=count, offset=_COUNT.size).astype(np.int64)
    if np.any(lengths > max_each) or head + int(lengths.sum()) != len(raw):
        raise SnniError("HE message has bad ciphertext lengths")
    ends = head + np.cumsum(lengths)
    starts = ends - lengths
    return [raw[int(s) : int(e)] for s, e in zip(starts, ends, strict=True)]
