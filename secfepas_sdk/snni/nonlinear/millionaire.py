"""The millionaires' protocol of CrypTFlow2 (Rathee et al., CCS 2020), batched.

Who holds what: the client holds a, the server holds b, both L-bit unsigned
integers (n of each). Output: XOR shares of 1{a > b}, one bit per element for
each party; nothing else is revealed.

1. Split a and b into digits (:func:`.layout.layout`: a function of the OT
   extension and L only, so both parties agree).
2. Leaves: for each k-bit digit, one 1-out-of-2^k OT with 2-bit messages. The
   server offers, for every possible client digit v, (1{v > b_i}, 1{v = b_i}) xor
   its own share bits; the client picks v = a_i. The 1-of-2^k OT is made of k
   random OTs (see :mod:`secfepas_sdk.snni.ot.session`). With ``gt_only_low`` the
   lowest digit's messages carry 1{v > b_i} only: no eq that contains the lowest
   digit is ever used.
3. Combine digits in a log-depth tree with
   gt = gt_H xor (eq_H and gt_L), eq = eq_H and eq_L. Both ANDs share eq_H,
   so each tree node consumes one *correlated* Beaver triple (x; y, y'; xy, xy'),
   made from 2 random OTs with 2-bit messages (one in each direction):
   a random OT with choice x0 and messages (m0, m1) gives x0 * (m0 xor m1) as
   m_{x0} xor m0, i.e. an XOR-shared cross term. The choices x are random, so
   under Ferret these are random-choice OTs: bit triples with no message at all.
   Nodes on the lowest path compute gt only (one AND, 2 opened bits).
   With ``free_first_level`` the server's leaf share bits are chosen as its
   triple shares (eq_H = x_s, (gt_L, eq_L) = (y_s, y'_s)); its Beaver openings on
   the first level are then 0 and not sent.
Rounds: the openings travel as a relay (:func:`turn_levels`): a tree of depth T
costs floor(T / 2) waits after the leaf OTs' one.
Two comparisons of one a (with b and b', ``shared``: ReLU6's two) share the leaf OTs,
whose choices are a's digits: each 1-of-2^k OT carries both messages, 2 w bits.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray

from secfepas_sdk.errors import SnniError
from secfepas_sdk.snni.channel import Channel
from secfepas_sdk.snni.kernels import checked_kernel
from secfepas_sdk.snni.nonlinear.layout import Layout, layout
from secfepas_sdk.snni.ot import words as packed_words
from secfepas_sdk.snni.ot.bits import pack_bits, packed_size, unpack_bits
from secfepas_sdk.snni.ot.session import (
    OtSession,
    choice_bits,
    one_of_n_decode,
    one_of_n_payload,
    slot_width,
)
from secfepas_sdk.snni.ot.words import words_decode, words_payload
from secfepas_sdk.snni.party import Party

U64 = NDArray[np.uint64]
U8 = NDArray[np.uint8]

__all__ = ["greater_than", "shares_leaves", "turn_levels", "warm_up"]


def _random_bits(shape: tuple[int, ...]) -> U8:
    count = int(np.prod(shape))
    raw = np.frombuffer(secrets.token_bytes((count + 7) // 8), dtype=np.uint8)
    return np.unpackbits(raw, count=count, bitorder="little").reshape(shape)


def _leaf_messages(b_digits: U64, k: int, width: int, r_gt: U8, r_eq: U8) -> U64:
    """Server: for each digit b and every client digit v, (1{v > b}, 1{v = b})
    xor its share bits, as (n, 2^k) messages (``width`` 1: the gt bit only)."""
    v = np.arange(1 << k, dtype=np.uint64)[None, :]
    b = b_digits.reshape(-1, 1)
    gt = (v > b).astype(np.uint64) ^ r_gt.reshape(-1, 1)
    if width == 1:
        return np.asarray(gt, dtype=np.uint64)
    eq = (v == b).astype(np.uint64) ^ r_eq.reshape(-1, 1)
    out: U64 = gt | (eq << np.uint64(1))
    return out


def _leaf_words(
    b_digits: U64, k: int, width: int, r_gt: U8, r_eq: U8, *, stride: int = 0, offset: int = 0
) -> U64:
    """The same messages packed in one word per digit: message v at bits
    [stride v + offset, stride v + offset + width) (``stride`` 0: ``width``, the
    messages end to end; a larger stride leaves room for another comparison's)."""
    stride = stride or width
    v = np.arange(1 << k, dtype=np.uint64)
    table = np.zeros(1 << k, dtype=np.uint64)
    for bv in range(1 << k):
        msg = (v > bv).astype(np.uint64)
        if width == 2:
            msg |= (v == bv).astype(np.uint64) << np.uint64(1)
        table[bv] = np.bitwise_or.reduce(msg << (v * np.uint64(stride) + np.uint64(offset)))
    ones = np.uint64(sum(1 << (stride * i + offset) for i in range(1 << k)))
    ones2 = ones << np.uint64(1) if width == 2 else np.uint64(0)
    kernel = _words_kernel()
    if kernel is not None:
        out = np.empty(b_digits.size, dtype=np.uint64)
        digits = np.ascontiguousarray(b_digits, dtype=np.uint64).reshape(-1)
        if digits.size and int(digits.max()) >= table.size:
            raise SnniError("leaf digit out of range")
        kernel(digits, table, ones, ones2, r_gt.reshape(-1), r_eq.reshape(-1), out)
        return out
    words = table[b_digits.astype(np.intp)]
    words ^= r_gt.astype(np.uint64) * ones
    if width == 2:
        words ^= r_eq.astype(np.uint64) * ones2
    return words


def shares_leaves(lay: Layout) -> bool:
    """Whether two comparisons of one client value can share its leaf OTs in this
    layout: every 1-of-2^k OT must carry both comparisons' messages (2 w bits each, so
    2 w 2^k <= 64). A function of the public layout, so both parties agree."""
    return all((2 * w << k) <= 64 for k, w in zip(lay.sizes, lay.widths, strict=True))


def warm_up() -> None:
    """Check (and load or compile) the numba leaf-word and 1-of-N passes now."""
    packed_words.warm_up()
    _words_kernel()


@checked_kernel
def _words_kernel() -> Callable[..., None] | None:
    """The numba leaf-word pass if it gives numpy's words (checked once), else None."""
    from secfepas_sdk.snni.ot._kernels import leaf_words

    rng = np.random.default_rng(29)
    table = rng.integers(0, 1 << 63, 8, dtype=np.uint64)
    digits = rng.integers(0, 8, 50).astype(np.uint64)
    r_gt, r_eq = (rng.integers(0, 2, 50).astype(np.uint8) for _ in "ge")
    got = np.empty(50, dtype=np.uint64)
    leaf_words(digits, table, np.uint64(0x5555), np.uint64(0xAAAA), r_gt, r_eq, got)
    want = table[digits.astype(np.intp)] ^ r_gt * np.uint64(0x5555)
    want ^= r_eq * np.uint64(0xAAAA)
    return leaf_words if np.array_equal(got, want) else None


def _packed(k: int, width: int) -> bool:
    return ((width << k) % 8) == 0


def _class_digits(values: U64, sizes: tuple[int, ...], cols: list[int]) -> U64:
    """(n, len(cols)) digits cols of each value (digit j is bits sum(sizes[:j]) ..,
    least significant first), in one broadcast pass: no (n, q) array to gather from."""
    offsets = np.cumsum((0, *sizes[:-1]))
    shifts = np.array([offsets[j] for j in cols], dtype=np.uint64)
    masks = np.array([(1 << sizes[j]) - 1 for j in cols], dtype=np.uint64)
    out: U64 = (values.reshape(-1, 1) >> shifts[None, :]) & masks[None, :]
    return out


def _leaves(
    channel: Channel,
    party: Party,
    ot: OtSession,
    value: U64,
    lay: Layout,
    nodes: int,
    copies: int = 1,
) -> tuple[U8, U8, U8, U8, U8]:
    """All random OTs of one comparison in one flight each way, then the leaf
    messages: (gt, eq) share bits (rows, q) and the triple material (x, y, x0 y')
    (:func:`_triples`). With ``copies`` = 2 the server's ``value`` holds two b per
    client a (b then b', 2n values) and each leaf OT carries both comparisons'
    messages: rows [0, n) compare a with b, rows [n, 2n) a with b'."""
    q = len(lay.sizes)
    n = int(value.size) if party is Party.CLIENT else int(value.size) // copies
    rows = n * copies
    kinds = list(zip(lay.sizes, lay.widths, strict=True))
    classes = sorted(set(kinds))
    cols = {c: [j for j, kind in enumerate(kinds) if kind == c] for c in classes}
    digits = {c: _class_digits(value, lay.sizes, cols[c]) for c in classes}
    gt = np.zeros((rows, q), dtype=np.uint8)
    eq = np.zeros((rows, q), dtype=np.uint8)
    if party is Party.CLIENT:
        leaf_keys = {
            c: ot.rot_recv(channel, choice_bits(digits[c], c[0]), slot_width(c[0], c[1] * copies))
            for c in classes
        }
        x, k_recv = ot.rot_recv_random(channel, rows * nodes, 2)
        s0, s1 = ot.rot_send_random(channel, rows * nodes, 2)
        for c in classes:
            k, w = c
            wide = w * copies
            chosen = digits[c]
            count = chosen.size << k
            if _packed(k, wide):
                raw = channel.recv_exact(count * wide // 8)
                leaf = words_decode(leaf_keys[c], raw, chosen, k, wide)
            else:
                raw = channel.recv_exact(packed_size(count, wide))
                leaf = one_of_n_decode(leaf_keys[c], raw, chosen, k, wide)
            leaf = leaf.reshape(n, len(cols[c]))
            for copy in range(copies):
                part = leaf >> np.uint64(w * copy)
                block = slice(copy * n, (copy + 1) * n)
                gt[block, cols[c]] = (part & np.uint64(1)).astype(np.uint8)
                if w == 2:
                    eq[block, cols[c]] = ((part >> np.uint64(1)) & np.uint64(1)).astype(np.uint8)
        return (gt, eq, *_triples(x, k_recv, s0, s1, rows, nodes))
    leaf_pairs = {
        c: ot.rot_send(channel, n * len(cols[c]) * c[0], slot_width(c[0], c[1] * copies))
        for c in classes
    }
    s0, s1 = ot.rot_send_random(channel, rows * nodes, 2)
    x, k_recv = ot.rot_recv_random(channel, rows * nodes, 2)
    xs, ys, cross = _triples(x, k_recv, s0, s1, rows, nodes)
    gt[:] = _random_bits((rows, q))
    eq[:] = _random_bits((rows, q))
    if lay.free_first_level and nodes:
        # The server's first-level inputs are its triple shares: eq_H = x, (gt_L, eq_L) = y.
        pairs = q // 2
        y = ys[:, :pairs]
        eq[:, 1 : 2 * pairs : 2] = xs[:, :pairs]
        gt[:, 0 : 2 * pairs : 2] = y & 1
        eq[:, 0 : 2 * pairs : 2] = y >> 1
    for c in classes:
        k, w = c
        wide = w * copies
        parts = [slice(copy * n, (copy + 1) * n) for copy in range(copies)]
        mine = [digits[c][block].reshape(-1) for block in parts]
        r_gt = [gt[block][:, cols[c]].reshape(-1) for block in parts]
        r_eq = [eq[block][:, cols[c]].reshape(-1) for block in parts]
        if _packed(k, wide):
            words = _leaf_words(mine[0], k, w, r_gt[0], r_eq[0], stride=wide)
            for copy in range(1, copies):
                words |= _leaf_words(
                    mine[copy], k, w, r_gt[copy], r_eq[copy], stride=wide, offset=w * copy
                )
            channel.send(words_payload(leaf_pairs[c], words, k, wide))
        else:
            msgs = _leaf_messages(mine[0], k, w, r_gt[0], r_eq[0])
            for copy in range(1, copies):
                more = _leaf_messages(mine[copy], k, w, r_gt[copy], r_eq[copy])
                msgs |= more << np.uint64(w * copy)
            channel.send(one_of_n_payload(leaf_pairs[c], msgs, k, wide))
    return gt, eq, xs, ys, cross


def _triples(x: U8, k_recv: U64, s0: U64, s1: U64, n: int, nodes: int) -> tuple[U8, U8, U8]:
    """The bit-triple material as (n, nodes) bits: x, y = s0 xor s1 (2 bits: y, y')
    and the receiver's half of the cross term, k_x xor s0 (2-bit OT words, cast
    down without 64-bit temporaries)."""
    y = np.empty(n * nodes, dtype=np.uint8)
    cross = np.empty(n * nodes, dtype=np.uint8)
    np.bitwise_xor(s0, s1, out=y, casting="unsafe")
    np.bitwise_xor(k_recv, s0, out=cross, casting="unsafe")
    return x.reshape(n, nodes), y.reshape(n, nodes), cross.reshape(n, nodes)


def greater_than(
    channel: Channel,
    party: Party,
    ot: OtSession,
    value: U64,
    bits: int,
    *,
    digits_layout: Layout | None = None,
    shared: bool = False,
) -> U8:
    """XOR share of 1{a > b}; the client passes a, the server b (``bits`` wide).
    The layout is the backend's (:func:`.layout.layout`) unless both parties pass
    the same ``digits_layout`` (tests: every layout must be exact).

    ``shared`` (both parties alike): two comparisons of each a, with b and b'. The
    client passes its n values a, the server b then b' (2n values); both get 2n
    bits, 1{a > b} then 1{a > b'}. They share the leaf OTs, whose choices are the
    digits of a: each 1-of-2^k OT carries both comparisons' messages (:func:`_leaves`),
    so the chosen-choice OTs are those of one comparison; each tree runs as before.
    The layout must allow it (:func:`shares_leaves`)."""
    lay = layout(ot.extension, bits) if digits_layout is None else digits_layout
    if sum(lay.sizes) != bits:
        raise SnniError(f"digit layout {lay.sizes} does not cover {bits} bits")
    copies = 2 if shared else 1
    if shared and not shares_leaves(lay):
        raise SnniError(f"digit layout {lay.sizes} cannot share its leaves")
    if shared and party is Party.SERVER and value.size % 2:
        raise SnniError("a shared comparison needs two server values per client value")
    q = len(lay.sizes)
    nodes = q - 1
    gt, eq, xs, y, cross = _leaves(channel, party, ot, value, lay, nodes, copies)
    # Correlated triples: x; y (bit 0) and y' (bit 1); z = x*y, z' = x*y' (shares).
    z = ((xs * np.uint8(3)) & y) ^ cross
    tree = _Tree(party, gt, eq, xs, y, z, lay)
    for t in range(len(tree.levels) + 1):
        sends = turn_levels(t, len(tree.levels))
        server_turn = t % 2 == 0
        if (party is Party.SERVER) == server_turn:
            for j in sends:
                if not (server_turn and tree.silent(j)):
                    channel.send(tree.opening(j))
        else:
            for j in sends:
                if server_turn and tree.silent(j):
                    tree.peer[j] = None  # the server's first-level openings are 0
                else:
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
    correlated triples; level j opens (d, e, e') = (eq_H ^ x, gt_L ^ y, eq_L ^ y'),
    without e' for the lowest pair when ``gt_only_low`` (its eq is never used)."""

    def __init__(self, party: Party, gt: U8, eq: U8, xs: U8, y: U8, z: U8, lay: Layout) -> None:
        self.client = party is Party.CLIENT
        self.me0 = np.uint8(1 if self.client else 0)
        self.gt, self.eq, self.xs, self.y, self.z = gt, eq, xs, y, z
        self.skip = 1 if lay.gt_only_low else 0
        self.free = lay.free_first_level
        self.levels: list[tuple[int, int]] = []  # (digits before the level, first triple)
        cur, used = gt.shape[1], 0
        while cur > 1:
            self.levels.append((cur, used))
            used += cur // 2
            cur = cur - cur // 2
        self.done = 0
        self.opened: dict[int, U8] = {}
        self.peer: dict[int, bytes | None] = {}

    def silent(self, j: int) -> bool:
        """Whether the server's opening of level j is 0 by construction (not sent;
        only the server opens level 0 in turn 0, see :func:`turn_levels`)."""
        return self.free and j == 0

    def _bits(self, j: int) -> int:
        pairs = self.levels[j][0] // 2
        return int(self.gt.shape[0]) * (3 * pairs - self.skip)

    def opening_size(self, j: int) -> int:
        return packed_size(self._bits(j), 1)

    def opening(self, j: int) -> bytes:
        """This party's opening of level j (levels below j are finished first)."""
        self._finish(j)
        cur, used = self.levels[j]
        pairs = cur // 2
        tx, ty = self.xs[:, used : used + pairs], self.y[:, used : used + pairs]
        gt, eq = self.gt, self.eq
        lo, hi = slice(0, 2 * pairs, 2), slice(1, 2 * pairs, 2)
        opened = np.concatenate(
            [
                (eq[:, hi] ^ tx).reshape(-1),
                (gt[:, lo] ^ (ty & 1)).reshape(-1),
                (eq[:, lo] ^ (ty >> 1))[:, self.skip :].reshape(-1),
            ]
        ).astype(np.uint8)
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
            n = self.gt.shape[0]
            mine = self.opened.pop(j)
            raw = self.peer.pop(j)
            if raw is None:
                theirs: U8 = np.zeros(mine.size, dtype=np.uint8)
            else:
                theirs = np.asarray(unpack_bits(raw, mine.size, 1, np.uint8), dtype=np.uint8)
            opened = mine ^ theirs.reshape(-1)
            d = opened[: n * pairs].reshape(n, pairs)
            e = opened[n * pairs : 2 * n * pairs].reshape(n, pairs)
            e2 = np.zeros((n, pairs), dtype=np.uint8)
            e2[:, self.skip :] = opened[2 * n * pairs :].reshape(n, pairs - self.skip)
            tx = self.xs[:, used : used + pairs]
            ty = self.y[:, used : used + pairs]
            tz = self.z[:, used : used + pairs]
            me0 = self.me0
            and_gt = (tz & 1) ^ (d & (ty & 1)) ^ (e & tx) ^ (me0 & d & e)
            and_eq = (tz >> 1) ^ (d & (ty >> 1)) ^ (e2 & tx) ^ (me0 & d & e2)
            if self.skip:
                and_eq[:, 0] = 0  # unused: the lowest path's eq
            gt, eq = self.gt, self.eq
            new_gt = gt[:, slice(1, 2 * pairs, 2)] ^ and_gt
            new_eq = and_eq
            if cur % 2:
                new_gt = np.concatenate([new_gt, gt[:, cur - 1 :]], axis=1)
                new_eq = np.concatenate([new_eq, eq[:, cur - 1 :]], axis=1)
            self.gt, self.eq = new_gt.astype(np.uint8), new_eq.astype(np.uint8)
            self.done += 1

    def result(self) -> U8:
        self._finish(len(self.levels))
        return np.ascontiguousarray(self.gt[:, 0])
