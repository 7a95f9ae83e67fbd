"""The millionaires' protocol of CrypTFlow2 (Rathee et al., CCS 2020), batched.

Who holds what: the client holds a, the server holds b, both L-bit unsigned
integers (n of each). Output: XOR shares of 1{a > b}, one bit per element for
each party; nothing else is revealed.

1. Split a and b into q = ceil(L / 5) digits of 4-5 bits (:func:`digit_sizes`).
2. Leaves: for each k-bit digit, one 1-out-of-2^k OT with 2-bit messages. The
   server offers, for every possible client digit v, (1{v > b_i}, 1{v = b_i}) xor
   its own random share bits; the client picks v = a_i. The 1-of-2^k OT is made
   of k random OTs (see :mod:`secfepas_sdk.snni.ot.session`).
3. Combine digits in a log-depth tree with
   gt = gt_H xor (eq_H and gt_L), eq = eq_H and eq_L. Both ANDs share eq_H,
   so each tree node consumes one *correlated* Beaver triple (x; y, y'; xy, xy'),
   made from 2 random OTs with 2-bit messages (one in each direction):
   a random OT with choice x0 and messages (m0, m1) gives x0 * (m0 xor m1) as
   m_{x0} xor m0, i.e. an XOR-shared cross term. The choices x are random, so
   under Ferret these are random-choice OTs: bit triples with no message at all.
Rounds: one OT round trip, then the tree's openings travel as a relay (see
:func:`turn_levels`): each one-way flight carries the sender's opening of the level
its peer needs and of the next one, so the tree of depth T = ceil(log2 q) costs the
camera floor(T / 2) waits instead of T. The messages are the lock-step exchange's,
byte for byte; only when each is sent changed.
"""

from __future__ import annotations

import secrets

import numpy as np
from numpy.typing import NDArray

from secfepas_sdk.errors import SnniError
from secfepas_sdk.snni.channel import Channel
from secfepas_sdk.snni.ot.bits import pack_bits, packed_size, unpack_bits
from secfepas_sdk.snni.ot.session import (
    OtSession,
    choice_bits,
    one_of_n_decode,
    one_of_n_payload,
    slot_width,
    words_decode,
    words_payload,
)
from secfepas_sdk.snni.party import Party

U64 = NDArray[np.uint64]
U8 = NDArray[np.uint8]

MAX_DIGIT_BITS = 5  # 1-of-32 leaves: 32 two-bit messages fill one 64-bit word
FERRET_DIGIT_BITS = 3  # see digit_sizes
_MSG_BITS = 2  # (gt, eq)


def digit_sizes(bits: int, max_digit: int = MAX_DIGIT_BITS) -> list[int]:
    """Digit widths, least significant first: the fewest digits of at most
    ``max_digit`` bits, as even as possible. A k-bit leaf costs k chosen-choice
    random OTs and 2^k two-bit messages; each extra digit costs a tree node (a bit
    triple and 3 opened bits each way). With SoftSpokenOT (k=4: 4 bytes per OT) and
    IKNP the OTs dominate and 4-5-bit digits are cheapest; under Ferret an OT costs
    about 1.5 bits, so 2^(k+1) message bits dominate and 3-bit digits are cheapest
    (36 bits: 37 bytes against 58 with 5-bit digits; 2-bit digits save 5% more but
    add a round)."""
    if bits < 1:
        raise SnniError("the millionaires' protocol needs at least one bit")
    if not 1 <= max_digit <= MAX_DIGIT_BITS:
        raise SnniError(f"digits must have 1..{MAX_DIGIT_BITS} bits")
    q = -(-bits // max_digit)
    base, extra = divmod(bits, q)
    return [base + 1] * extra + [base] * (q - extra)


def _random_bits(shape: tuple[int, ...]) -> U8:
    count = int(np.prod(shape))
    raw = np.frombuffer(secrets.token_bytes((count + 7) // 8), dtype=np.uint8)
    return np.unpackbits(raw, count=count, bitorder="little").reshape(shape)


def _leaf_messages(b_digits: U64, k: int, r_gt: U8, r_eq: U8) -> U64:
    """Server: for each digit b and every client digit v, (1{v > b}, 1{v = b})
    xor its share bits, as (n, 2^k) two-bit messages."""
    v = np.arange(1 << k, dtype=np.uint64)[None, :]
    b = b_digits.reshape(-1, 1)
    gt = (v > b).astype(np.uint64) ^ r_gt.reshape(-1, 1)
    eq = (v == b).astype(np.uint64) ^ r_eq.reshape(-1, 1)
    out: U64 = gt | (eq << np.uint64(1))
    return out


def _leaf_words(b_digits: U64, k: int, r_gt: U8, r_eq: U8) -> U64:
    """The same messages packed in one word per digit (message v at bits 2v, 2v+1)."""
    v = np.arange(1 << k, dtype=np.uint64)
    table = np.zeros(1 << k, dtype=np.uint64)
    for bv in range(1 << k):
        gt = (v > bv).astype(np.uint64)
        eq = (v == bv).astype(np.uint64)
        table[bv] = np.bitwise_or.reduce((gt | (eq << np.uint64(1))) << (v * np.uint64(2)))
    ones = np.uint64(sum(1 << (2 * i) for i in range(1 << k)))
    words = table[b_digits.astype(np.intp)]
    words ^= r_gt.astype(np.uint64) * ones
    words ^= r_eq.astype(np.uint64) * (ones << np.uint64(1))
    return words


def _packed(k: int) -> bool:
    return ((_MSG_BITS << k) % 8) == 0


def _split(values: U64, sizes: list[int]) -> U64:
    """(n, q) digits of each value, least significant first."""
    out = np.empty((values.size, len(sizes)), dtype=np.uint64)
    shift = 0
    for j, k in enumerate(sizes):
        out[:, j] = (values.reshape(-1) >> np.uint64(shift)) & np.uint64((1 << k) - 1)
        shift += k
    return out


def greater_than(channel: Channel, party: Party, ot: OtSession, value: U64, bits: int) -> U8:
    """XOR share of 1{a > b}; the client passes a, the server b (``bits`` wide)."""
    n = int(value.size)
    sizes = digit_sizes(bits, FERRET_DIGIT_BITS if ot.extension == "ferret" else MAX_DIGIT_BITS)
    q = len(sizes)
    digits = _split(value, sizes)
    classes = sorted(set(sizes))
    cols = {k: [j for j, size in enumerate(sizes) if size == k] for k in classes}
    nodes = q - 1
    gt = np.empty((n, q), dtype=np.uint8)
    eq = np.empty((n, q), dtype=np.uint8)
    # Step 1: all random OTs of this comparison, in one flight each way.
    if party is Party.CLIENT:
        leaf_keys = {
            k: ot.rot_recv(channel, choice_bits(digits[:, cols[k]], k), slot_width(k, _MSG_BITS))
            for k in classes
        }
        x, k_recv = ot.rot_recv_random(channel, n * nodes, 2)
        s0, s1 = ot.rot_send_random(channel, n * nodes, 2)
        for k in classes:
            chosen = digits[:, cols[k]]
            count = chosen.size << k
            if _packed(k):
                raw = channel.recv_exact(count * _MSG_BITS // 8)
                leaf = words_decode(leaf_keys[k], raw, chosen, k, _MSG_BITS)
            else:
                raw = channel.recv_exact(packed_size(count, _MSG_BITS))
                leaf = one_of_n_decode(leaf_keys[k], raw, chosen, k, _MSG_BITS)
            leaf = leaf.reshape(n, len(cols[k]))
            gt[:, cols[k]] = (leaf & np.uint64(1)).astype(np.uint8)
            eq[:, cols[k]] = (leaf >> np.uint64(1)).astype(np.uint8)
    else:
        leaf_pairs = {
            k: ot.rot_send(channel, n * len(cols[k]) * k, slot_width(k, _MSG_BITS)) for k in classes
        }
        s0, s1 = ot.rot_send_random(channel, n * nodes, 2)
        x, k_recv = ot.rot_recv_random(channel, n * nodes, 2)
        gt[:] = _random_bits((n, q))
        eq[:] = _random_bits((n, q))
        for k in classes:
            mine = digits[:, cols[k]].reshape(-1)
            r_gt, r_eq = gt[:, cols[k]].reshape(-1), eq[:, cols[k]].reshape(-1)
            if _packed(k):
                words = _leaf_words(mine, k, r_gt, r_eq)
                channel.send(words_payload(leaf_pairs[k], words, k, _MSG_BITS))
            else:
                msgs = _leaf_messages(mine, k, r_gt, r_eq)
                channel.send(one_of_n_payload(leaf_pairs[k], msgs, k, _MSG_BITS))
    # Correlated triples: x; y (bit 0) and y' (bit 1); z = x*y, z' = x*y' (shares).
    y = (s0 ^ s1).astype(np.uint8).reshape(n, nodes) if nodes else np.zeros((n, 0), np.uint8)
    xs = x.reshape(n, nodes)
    z = ((xs * np.uint8(3)) & y) ^ (k_recv ^ s0).astype(np.uint8).reshape(n, nodes)
    tree = _Tree(party, gt, eq, xs, y, z)
    for t in range(len(tree.levels) + 1):
        sends = turn_levels(t, len(tree.levels))
        if (party is Party.SERVER) == (t % 2 == 0):
            for j in sends:
                channel.send(tree.opening(j))
        else:
            for j in sends:
                tree.peer[j] = channel.recv_exact(tree.opening_size(j))
    return tree.result()


def turn_levels(turn: int, depth: int) -> list[int]:
    """The tree levels (0-based) whose openings go in flight ``turn`` of a tree of
    ``depth`` levels: the server sends in even turns (turn 0 rides with its leaf
    messages), the client in odd ones. Turn t > 0 carries level t - 1 (which the peer
    needs to finish it) and level t (which the sender can already open, having both
    openings of t - 1), so each one-way flight advances the tree by one level and the
    camera waits floor(depth / 2) times, not depth times as in a lock-step exchange."""
    if turn == 0:
        return [0] if depth else []
    return [j for j in (turn - 1, turn) if j < depth]


class _Tree:
    """One party's state of the AND tree: its (gt, eq) shares per digit and the
    correlated triples; level j opens (d, e, e') = (eq_H ^ x, gt_L ^ y, eq_L ^ y')."""

    def __init__(self, party: Party, gt: U8, eq: U8, xs: U8, y: U8, z: U8) -> None:
        self.me0 = np.uint8(1 if party is Party.CLIENT else 0)
        self.gt, self.eq, self.xs, self.y, self.z = gt, eq, xs, y, z
        self.levels: list[tuple[int, int]] = []  # (digits before the level, first triple)
        cur, used = gt.shape[1], 0
        while cur > 1:
            self.levels.append((cur, used))
            used += cur // 2
            cur = cur - cur // 2
        self.done = 0
        self.opened: dict[int, U8] = {}
        self.peer: dict[int, bytes] = {}

    def opening_size(self, j: int) -> int:
        return packed_size(3 * self.gt.shape[0] * (self.levels[j][0] // 2), 1)

    def opening(self, j: int) -> bytes:
        """This party's opening of level j (levels below j are finished first)."""
        self._finish(j)
        cur, used = self.levels[j]
        pairs = cur // 2
        tx, ty = self.xs[:, used : used + pairs], self.y[:, used : used + pairs]
        gt, eq = self.gt, self.eq
        lo, hi = slice(0, 2 * pairs, 2), slice(1, 2 * pairs, 2)
        opened = np.stack([eq[:, hi] ^ tx, gt[:, lo] ^ (ty & 1), eq[:, lo] ^ (ty >> 1)])
        self.opened[j] = opened
        return pack_bits(opened, 1)

    def _finish(self, upto: int) -> None:
        """Combine levels done .. upto - 1 (both openings known)."""
        while self.done < upto:
            j = self.done
            if j not in self.opened:
                self.opening(j)
            cur, used = self.levels[j]
            pairs = cur // 2
            mine = self.opened.pop(j)
            raw = self.peer.pop(j)
            theirs: U8 = np.asarray(unpack_bits(raw, mine.size, 1, np.uint8), dtype=np.uint8)
            opened = mine ^ theirs.reshape(mine.shape)
            d, e, e2 = opened[0], opened[1], opened[2]
            tx = self.xs[:, used : used + pairs]
            ty = self.y[:, used : used + pairs]
            tz = self.z[:, used : used + pairs]
            me0 = self.me0
            and_gt = (tz & 1) ^ (d & (ty & 1)) ^ (e & tx) ^ (me0 & d & e)
            and_eq = (tz >> 1) ^ (d & (ty >> 1)) ^ (e2 & tx) ^ (me0 & d & e2)
            gt, eq = self.gt, self.eq
            new_gt = gt[:, slice(1, 2 * pairs, 2)] ^ and_gt
            new_eq = and_eq
            if cur % 2:
                new_gt = np.concatenate([new_gt, gt[:, cur - 1 :]], axis=1)
                new_eq = np.concatenate([new_eq, eq[:, cur - 1 :]], axis=1)
            self.gt, self.eq = new_gt, new_eq
            self.done += 1

    def result(self) -> U8:
        self._finish(len(self.levels))
        return np.ascontiguousarray(self.gt[:, 0])
