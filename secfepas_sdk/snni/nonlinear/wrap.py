"""Additive shares mod 2^s of the wrap bits that truncation and relu_truncate
subtract, each in the cheapest form for the session's OT extension (public, so
both parties agree).

Who holds what: the client holds bits (w0; or m0, d0), the server (w1; or m1,
d1); each gets an additive share mod 2^s of the function below; nothing else.

- Truncation, w = w0 xor w1 = w1 + w0 (1 - 2 w1). SoftSpokenOT/IKNP (suite
  snni-cheetah-v3): one chosen-message OT of s-bit messages (w1 xor c) - rho, the
  server offering, the client choosing by w0 (1 + 2s bits). Ferret: one additive
  correlated OT with the client choosing w0 and the server's correlation 1 - 2 w1
  (Gilboa's product, as CrypTFlow2's B2A): 1 + s bits.
- Truncation of a value whose top bit is known to be 0, w = w0 or w1 = w1 + w0 (1 - w1)
  (``join="or"``; w_i the top bits of the shares): the same OT with correlation 1 - w1.
- relu_truncate, g = (d0 xor d1) m0 m1 = m1 (m0 d0) + (m1 d1) (m0 (1 - 2 d0)).
  SoftSpokenOT/IKNP: one 1-of-4 OT on the server's (m1, d1) (2 + 4s bits).
  Ferret: two correlated OTs, the server choosing m1 and m1 d1, the client's
  correlations m0 d0 and m0 (1 - 2 d0): 2 + 2s bits.
A correlated OT hides the receiver's choice (OT receiver privacy) and the
correlation behind a random key (sender privacy), exactly as the chosen-message
forms do; the outputs are uniform shares.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from secfepas_sdk.errors import SnniError
from secfepas_sdk.snni.channel import Channel
from secfepas_sdk.snni.ot.bits import pack_bits, packed_size, unpack_bits
from secfepas_sdk.snni.ot.session import OtSession, one_of_n_decode, one_of_n_payload, slot_width
from secfepas_sdk.snni.prg import Prg

U64 = NDArray[np.uint64]
U8 = NDArray[np.uint8]
Keys = tuple[U64, U64]


def correlated(ot: OtSession) -> bool:
    """Whether this session uses the correlated-OT forms (Ferret's)."""
    return ot.extension == "ferret"


def _mask(shift: int) -> np.uint64:
    return np.uint64((1 << shift) - 1)


# -- truncation: w0 xor w1 (the server offers, so its share is ready once it has sent) --
def xor_offer(
    channel: Channel, ot: OtSession, prg: Prg, w1: U8, shift: int, *, join: str = "xor"
) -> U64:
    """Server's share mod 2^shift of w0 xor w1 (``join="or"``: w0 or w1); it is the OT
    sender. The client's side is :func:`xor_choose` whatever the join."""
    s_mask = _mask(shift)
    w = w1.astype(np.uint64).reshape(-1)
    if join not in ("xor", "or"):
        raise SnniError(f"unknown join {join!r}")
    if correlated(ot):
        slope = np.uint64(2) * w if join == "xor" else w  # w0 (1 - 2 w1), or w0 (1 - w1)
        x = ot.cot_send(channel, (np.uint64(1) - slope) & s_mask, shift)
        return np.asarray((w - x) & s_mask, dtype=np.uint64)
    rho = prg.uint64(int(w.size), shift)
    one = (w ^ np.uint64(1)) if join == "xor" else np.ones_like(w)
    ot.chosen_send(channel, (w - rho) & s_mask, (one - rho) & s_mask, shift)
    return rho


def xor_choose(channel: Channel, ot: OtSession, w0: U8, shift: int) -> U64:
    """Client's share mod 2^shift of w0 xor w1, or of w0 or w1 (it chooses by w0)."""
    if correlated(ot):
        return ot.cot_recv(channel, w0.reshape(-1), shift)
    return ot.chosen_recv(channel, w0.reshape(-1), shift)


# -- relu_truncate: (d0 xor d1) m0 m1, split around the multiplexer's flights ----
def and_wrap_keys(channel: Channel, ot: OtSession, n: int, shift: int) -> Keys:
    """Client: the OT keys (reads the server's choices)."""
    width = shift if correlated(ot) else slot_width(2, shift)
    return ot.rot_send(channel, 2 * n, width)


def and_wrap_client(
    channel: Channel, ot: OtSession, prg: Prg, keys: Keys, m0: U8, d0: U8, shift: int
) -> U64:
    """Client: sends its message, returns its share of (d0 xor d1) m0 m1."""
    s_mask = _mask(shift)
    n = int(m0.size)
    m, d = m0.astype(np.uint64).reshape(-1), d0.astype(np.uint64).reshape(-1)
    k0, k1 = keys
    if correlated(ot):
        delta = np.stack([m * d, m * (np.uint64(1) - np.uint64(2) * d)], axis=1).reshape(-1)
        channel.send(pack_bits((k0 + delta - k1) & s_mask, shift))
        return np.asarray((-k0.reshape(n, 2).sum(axis=1)) & s_mask, dtype=np.uint64)
    rho = prg.uint64(n, shift)
    msgs = np.empty((n, 4), dtype=np.uint64)
    for u in (0, 1):  # the server's m1
        for e in (0, 1):  # the server's d1
            msgs[:, u + 2 * e] = ((m & np.uint64(u)) * (d ^ np.uint64(e)) - rho) & s_mask
    channel.send(one_of_n_payload(keys, msgs, 2, shift))
    return rho


def and_wrap_open(channel: Channel, ot: OtSession, m1: U8, d1: U8, shift: int) -> tuple[U64, U8]:
    """Server: sends its choices; returns the keys and the choices for the close."""
    if correlated(ot):
        choices = np.stack([m1, m1 & d1], axis=1).reshape(-1).astype(np.uint8)
        return ot.rot_recv(channel, choices, shift), choices
    bits = np.stack([m1, d1], axis=1).reshape(-1).astype(np.uint8)
    return ot.rot_recv(channel, bits, slot_width(2, shift)), bits


def and_wrap_close(
    channel: Channel, ot: OtSession, opened: tuple[U64, U8], n: int, shift: int
) -> U64:
    """Server: reads the client's message, returns its share."""
    key, bits = opened
    s_mask = _mask(shift)
    if correlated(ot):
        y = np.asarray(unpack_bits(channel.recv_exact(packed_size(2 * n, shift)), 2 * n, shift))
        got = (key + bits.astype(np.uint64) * y.astype(np.uint64)) & s_mask
        return np.asarray(got.reshape(n, 2).sum(axis=1) & s_mask, dtype=np.uint64)
    pair = bits.reshape(n, 2).astype(np.uint64)
    choice = pair[:, 0] | (pair[:, 1] << np.uint64(1))
    raw = channel.recv_exact(packed_size(4 * n, shift))
    return one_of_n_decode(key, raw, choice, 2, shift)
