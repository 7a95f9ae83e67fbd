"""The millionaires' protocol of CrypTFlow2 (Rathee et al., CCS 2020), batched.

Who holds what: the client holds a, the server holds b, both L-bit unsigned
integers (n of each). Output: XOR shares of 1{a > b}, one bit per element for
each party; nothing else is revealed.

1. Split a and b into q = ceil(L / 4) digits of 4 bits.
2. Leaves: for each digit, one 1-out-of-16 OT with 2-bit messages. The server
   offers, for every possible client digit v, (1{v > b_i}, 1{v = b_i}) xor its
   own random share bits; the client picks v = a_i. The 1-of-16 OT is made of
   4 random OTs (see :mod:`secfepas_sdk.snni.ot.session`).
3. Combine digits in a log-depth tree with
   gt = gt_H xor (eq_H and gt_L), eq = eq_H and eq_L. Both ANDs share eq_H,
   so each tree node consumes one *correlated* Beaver triple (x; y, y'; xy, xy'),
   made from 2 random OTs with 2-bit messages (one in each direction):
   a random OT with choice x0 and messages (m0, m1) gives x0 * (m0 xor m1) as
   m_{x0} xor m0, i.e. an XOR-shared cross term.
Rounds: one OT round trip, then one exchange per tree level (ceil(log2 q)).
"""

from __future__ import annotations

import secrets

import numpy as np
from numpy.typing import NDArray

from secfepas_sdk.snni.channel import Channel
from secfepas_sdk.snni.nonlinear._link import exchange
from secfepas_sdk.snni.ot.bits import pack_bits, unpack_bits
from secfepas_sdk.snni.ot.session import (
    OtSession,
    choice_bits,
    slot_width,
    words_decode,
    words_payload,
)
from secfepas_sdk.snni.party import Party

U64 = NDArray[np.uint64]
U8 = NDArray[np.uint8]

DIGIT_BITS = 4
_LOG_N = DIGIT_BITS
_MSG_BITS = 2  # (gt, eq)


def _random_bits(shape: tuple[int, ...]) -> U8:
    count = int(np.prod(shape))
    raw = np.frombuffer(secrets.token_bytes((count + 7) // 8), dtype=np.uint8)
    return np.unpackbits(raw, count=count, bitorder="little").reshape(shape)


def _leaf_words(b_digits: U64, r_gt: U8, r_eq: U8) -> U64:
    """Server: packed 1-of-16 messages (gt, eq) for each of its digits."""
    v = np.arange(1 << DIGIT_BITS, dtype=np.uint64)
    table = np.zeros(1 << DIGIT_BITS, dtype=np.uint64)
    for bv in range(1 << DIGIT_BITS):
        gt = (v > bv).astype(np.uint64)
        eq = (v == bv).astype(np.uint64)
        word = (gt | (eq << np.uint64(1))) << (v * np.uint64(_MSG_BITS))
        table[bv] = np.bitwise_or.reduce(word)
    words = table[b_digits.astype(np.intp)]
    words ^= r_gt.astype(np.uint64) * np.uint64(0x55555555)
    words ^= r_eq.astype(np.uint64) * np.uint64(0xAAAAAAAA)
    return words


def _digits(values: U64, bits: int) -> tuple[U64, int]:
    q = (bits + DIGIT_BITS - 1) // DIGIT_BITS
    shifts = np.arange(q, dtype=np.uint64) * np.uint64(DIGIT_BITS)
    return (values.reshape(-1, 1) >> shifts[None, :]) & np.uint64(0xF), q


def greater_than(channel: Channel, party: Party, ot: OtSession, value: U64, bits: int) -> U8:
    """XOR share of 1{a > b}; the client passes a, the server b (``bits`` wide)."""
    n = int(value.size)
    digits, q = _digits(value, bits)
    nodes = q - 1
    kw = slot_width(_LOG_N, _MSG_BITS)
    x = _random_bits((n * nodes,))
    # Step 1: all random OTs of this comparison, in one flight each way.
    if party is Party.CLIENT:
        leaf_keys = ot.rot_recv(channel, choice_bits(digits, _LOG_N), kw)
        k_recv = ot.rot_recv(channel, x, 2)
        s0, s1 = ot.rot_send(channel, n * nodes, 2)
        raw = channel.recv_exact(n * q * 4)
        leaf = words_decode(leaf_keys, raw, digits, _LOG_N, _MSG_BITS).reshape(n, q)
        gt = (leaf & np.uint64(1)).astype(np.uint8)
        eq = (leaf >> np.uint64(1)).astype(np.uint8)
    else:
        leaf_pair = ot.rot_send(channel, n * q * _LOG_N, kw)
        s0, s1 = ot.rot_send(channel, n * nodes, 2)
        k_recv = ot.rot_recv(channel, x, 2)
        gt = _random_bits((n, q))
        eq = _random_bits((n, q))
        channel.send(words_payload(leaf_pair, _leaf_words(digits, gt, eq), _LOG_N, _MSG_BITS))
    # Correlated triples: x; y (bit 0) and y' (bit 1); z = x*y, z' = x*y' (shares).
    y = (s0 ^ s1).astype(np.uint8).reshape(n, nodes) if nodes else np.zeros((n, 0), np.uint8)
    xs = x.reshape(n, nodes)
    z = ((xs * np.uint8(3)) & y) ^ (k_recv ^ s0).astype(np.uint8).reshape(n, nodes)
    used = 0
    me0 = np.uint8(1 if party is Party.CLIENT else 0)
    while gt.shape[1] > 1:
        cur = gt.shape[1]
        pairs = cur // 2
        hi = slice(1, 2 * pairs, 2)
        lo = slice(0, 2 * pairs, 2)
        tx = xs[:, used : used + pairs]
        ty = y[:, used : used + pairs]
        tz = z[:, used : used + pairs]
        used += pairs
        d = eq[:, hi] ^ tx
        e = gt[:, lo] ^ (ty & 1)
        e2 = eq[:, lo] ^ (ty >> 1)
        opened = np.stack([d, e, e2])
        mine = pack_bits(opened, 1)
        peer = unpack_bits(exchange(channel, party, mine), opened.size, 1, np.uint8)
        opened ^= peer.reshape(opened.shape)
        d, e, e2 = opened[0], opened[1], opened[2]
        and_gt = (tz & 1) ^ (d & (ty & 1)) ^ (e & tx) ^ (me0 & d & e)
        and_eq = (tz >> 1) ^ (d & (ty >> 1)) ^ (e2 & tx) ^ (me0 & d & e2)
        new_gt = gt[:, hi] ^ and_gt
        new_eq = and_eq
        if cur % 2:
            new_gt = np.concatenate([new_gt, gt[:, cur - 1 :]], axis=1)
            new_eq = np.concatenate([new_eq, eq[:, cur - 1 :]], axis=1)
        gt, eq = new_gt, new_eq
    return np.ascontiguousarray(gt[:, 0])
