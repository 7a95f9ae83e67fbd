"""Base oblivious transfer: Naor-Pinkas (SODA 2001), batched, over ed25519.

Construction (random-OT form, one round trip for a whole batch):
  sender:   c, r <- Z_q; sends C = c*G, R = r*G
  receiver: for each i, k_i <- Z_q; PK_{b_i} = k_i*G, PK_{1-b_i} = C - PK_{b_i};
            sends PK_0 (32 bytes); key = H(i, k_i*R)
  sender:   key0 = H(i, r*PK_0), key1 = H(i, r*C - r*PK_0)
Security (semi-honest, as the whole engine): PK_0 is uniform whatever b_i, so
the sender learns nothing; the key the receiver did not choose needs
CDH(C, R) to compute (CDH assumption on ed25519's prime-order subgroup, H a
random oracle). Naor and Pinkas also prove it against a malicious receiver.

Group operations are libsodium's, through PyNaCl: ed25519 points with the
cofactor handled by checking every received point with
``crypto_core_ed25519_is_valid_point`` (canonical, on the curve, in the
prime-order subgroup, not of small order). ristretto255 would remove the
cofactor altogether, but PyNaCl does not expose it. H is SHA-256 over a domain
tag, the transcript (C, R), the index and the shared point.

Who holds what: the sender ends with (key0_i, key1_i), the receiver with
key_{b_i}; keys are 16-byte seeds for :class:`~secfepas_sdk.snni.prg.Prg`.
"""

from __future__ import annotations

import hashlib
import secrets
from types import ModuleType

import numpy as np
from numpy.typing import NDArray

from secfepas_sdk._extras import require
from secfepas_sdk.errors import SnniError
from secfepas_sdk.snni.channel import Channel

POINT_BYTES = 32
KEY_BYTES = 16
MAX_BASE_OTS = 1024
_DOMAIN = b"secfepas/np01-base-ot/v1"


def _sodium() -> ModuleType:
    """libsodium through PyNaCl (in the camera and edge extras), imported on use."""
    return require("nacl.bindings", "camera")


def _scalar() -> bytes:
    """A uniform nonzero scalar mod the group order (64 random bytes reduced)."""
    return bytes(_sodium().crypto_core_ed25519_scalar_reduce(secrets.token_bytes(64)))


def _valid_point(point: bytes, what: str) -> bytes:
    if len(point) != POINT_BYTES or not _sodium().crypto_core_ed25519_is_valid_point(point):
        raise SnniError(f"base OT: the peer sent an invalid group element ({what})")
    return point


def _mul(scalar: bytes, point: bytes) -> bytes:
    exceptions = require("nacl.exceptions", "camera")
    try:
        return bytes(_sodium().crypto_scalarmult_ed25519_noclamp(scalar, point))
    except exceptions.RuntimeError as exc:  # identity result: negligible unless the peer cheats
        raise SnniError("base OT: degenerate group element") from exc


def _kdf(transcript: bytes, index: int, point: bytes) -> bytes:
    h = hashlib.sha256()
    h.update(_DOMAIN)
    h.update(transcript)
    h.update(index.to_bytes(4, "little"))
    h.update(point)
    return h.digest()[:KEY_BYTES]


def _check_count(count: int) -> None:
    if not 1 <= count <= MAX_BASE_OTS:
        raise SnniError(f"base OT count must be in 1..{MAX_BASE_OTS}, got {count}")


def send_first(channel: Channel) -> tuple[bytes, bytes, bytes]:
    """Sender, message 1: send (C, R). Returns the secret state (r, C, R)."""
    sodium = _sodium()
    c, r = _scalar(), _scalar()
    big_c = bytes(sodium.crypto_scalarmult_ed25519_base_noclamp(c))
    big_r = bytes(sodium.crypto_scalarmult_ed25519_base_noclamp(r))
    channel.send(big_c + big_r)
    return r, big_c, big_r


def send_finish(
    channel: Channel, state: tuple[bytes, bytes, bytes], count: int
) -> tuple[NDArray[np.uint8], NDArray[np.uint8]]:
    """Sender, after the receiver's reply: both keys of each OT, (count, 16) each."""
    _check_count(count)
    sodium = _sodium()
    r, big_c, big_r = state
    raw = channel.recv_exact(count * POINT_BYTES)
    transcript = big_c + big_r
    r_c = _mul(r, big_c)
    keys0 = np.empty((count, KEY_BYTES), dtype=np.uint8)
    keys1 = np.empty((count, KEY_BYTES), dtype=np.uint8)
    for i in range(count):  # count <= 1024, once per session: a loop is fine here
        pk0 = _valid_point(raw[i * POINT_BYTES : (i + 1) * POINT_BYTES], "PK0")
        r_pk0 = _mul(r, pk0)
        r_pk1 = bytes(sodium.crypto_core_ed25519_sub(r_c, r_pk0))
        keys0[i] = np.frombuffer(_kdf(transcript, i, r_pk0), dtype=np.uint8)
        keys1[i] = np.frombuffer(_kdf(transcript, i, r_pk1), dtype=np.uint8)
    return keys0, keys1


def receive(
    channel: Channel, choices: NDArray[np.uint8], *, peer_points: bytearray | None = None
) -> NDArray[np.uint8]:
    """Receiver: read (C, R), reply with PK_0 for each choice bit; keys (count, 16).
    ``peer_points``, if given, receives the sender's public C || R."""
    sodium = _sodium()
    count = int(choices.size)
    _check_count(count)
    raw = channel.recv_exact(2 * POINT_BYTES)
    big_c = _valid_point(raw[:POINT_BYTES], "C")
    big_r = _valid_point(raw[POINT_BYTES:], "R")
    transcript = big_c + big_r
    if peer_points is not None:
        peer_points += transcript
    keys = np.empty((count, KEY_BYTES), dtype=np.uint8)
    reply = bytearray()
    for i, bit in enumerate(choices.reshape(-1).tolist()):
        k = _scalar()
        pk_b = bytes(sodium.crypto_scalarmult_ed25519_base_noclamp(k))
        pk0 = pk_b if bit == 0 else bytes(sodium.crypto_core_ed25519_sub(big_c, pk_b))
        reply += pk0
        keys[i] = np.frombuffer(_kdf(transcript, i, _mul(k, big_r)), dtype=np.uint8)
    channel.send(bytes(reply))
    return keys
