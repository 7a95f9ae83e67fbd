"""One Ferret iteration, produced one GGM tree group at a time (bounded memory).

Why: an iteration's n COTs are n x 16 B (170 MB for ``lpn.MAIN``) per direction, but
output j is local: the XOR of its D rows of the k base COTs (the LPN table) and leaf
j of its tree, and trees grow in groups of about 8 MiB of leaves anyway. So a party
keeps, per direction, the table, what regrows a group's trees and one group's
outputs, and fills the group that a request reaches. The outputs, their order and
every message are those of the whole-buffer version (pinned in
tests/snni/ot/test_ferret_stream.py); only *when* an output is computed changes.

Who holds what: the sender (holder of Delta) keeps its secret tree roots and its
table of base blocks K; it grows every tree once at the start, for the SPCOT
message's level sums, and again group by group as the outputs are used (one more
AES pass over the trees). The receiver keeps its table of base blocks M and bits u,
the unmasked level sums it learnt and its sides (the punctured paths), and computes
all n of its bits x at the start, before the sender's message arrives (the bit set
is 74 kB, in cache), so that a request's d = x xor c goes out before its blocks
are computed, as before.
"""

from __future__ import annotations

import abc
import secrets
from collections.abc import Iterator
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from secfepas_sdk.errors import SnniError
from secfepas_sdk.snni.ot import ggm, lpn
from secfepas_sdk.snni.ot.aesblocks import Blocks
from secfepas_sdk.snni.ot.crhash import crhash

U8 = NDArray[np.uint8]

GROUP_BYTES = 1 << 23  # leaves per tree group: few numpy calls per level, bounded scratch


class Schedule(Protocol):
    """The counters both parties keep alike (the iteration key, the mask tweaks)."""

    def next_key(self) -> bytes: ...

    def mask_tweaks(self, count: int) -> U8: ...


def trees_per_group(p: lpn.LpnParams) -> int:
    return max(1, min(p.t, GROUP_BYTES // (16 << p.log_leaves)))


def group_rows(p: lpn.LpnParams) -> int:
    """Outputs of one full group (the size of a direction's group buffer)."""
    return trees_per_group(p) << p.log_leaves


def scratch_for(*params: lpn.LpnParams) -> ggm.Scratch:
    """GGM level scratch for one group of any of ``params`` (a party shares one)."""
    return ggm.Scratch(max(group_rows(p) // 2 for p in params))


def group_buffer(buf: Blocks | None, p: lpn.LpnParams) -> Blocks:
    """``buf`` if it holds a group of ``p``, else a new one."""
    return buf if buf is not None and buf.rows.shape[0] >= group_rows(p) else Blocks(group_rows(p))


class _Iteration(abc.ABC):
    """The outputs of one iteration, one group in ``buf`` at a time."""

    __slots__ = ("buf", "encoder", "loaded", "p", "scratch", "trees")

    def __init__(
        self, p: lpn.LpnParams, encoder: lpn.Encoder, buf: Blocks, scratch: ggm.Scratch
    ) -> None:
        self.p, self.encoder, self.scratch = p, encoder, scratch
        self.trees = trees_per_group(p)
        self.buf = group_buffer(buf, p)
        self.loaded = -1

    def _span(self, g: int) -> tuple[int, int, int]:
        """Group g's first tree, its tree count and its first output row."""
        a = g * self.trees
        return a, min(self.p.t, a + self.trees) - a, a << self.p.log_leaves

    @abc.abstractmethod
    def _fill(self, g: int) -> None:
        """Compute group g's outputs into ``buf`` (the sender's or the receiver's way)."""

    def pieces(self, lo: int, hi: int) -> Iterator[tuple[int, U8]]:
        """(first row, blocks) of outputs lo .. hi - 1, group by group: a view of the
        group buffer, valid until the next piece is asked for."""
        per = self.trees << self.p.log_leaves
        while lo < hi:
            g = lo // per
            if g != self.loaded:
                self.loaded = -1
                self._fill(g)
                self.loaded = g
            end = min(hi, (g + 1) * per)
            yield lo, self.buf.rows[lo - g * per : end - g * per]
            lo = end

    def tail_blocks(self, count: int) -> U8:
        """A copy of the last ``count`` outputs: the next iteration's base COTs (its
        reserve)."""
        p = self.p
        out = np.empty((count, 16), dtype=np.uint8)
        first = p.n - count
        for at, rows in self.pieces(first, p.n):
            out[at - first : at - first + rows.shape[0]] = rows
        return out


class SenderIteration(_Iteration):
    """Sender: q_j = leaf_j xor XOR_r K[idx(j, r)] from its secret roots and table."""

    __slots__ = ("message", "roots")

    def __init__(
        self,
        p: lpn.LpnParams,
        base: U8,
        sched: Schedule,
        delta: U8,
        buf: Blocks | None,
        scratch: ggm.Scratch,
    ) -> None:
        """Starts the iteration from ``base`` (reserve blocks); :attr:`message` is
        its SPCOT message, to send."""
        h = p.log_leaves
        k_tree = np.ascontiguousarray(base[p.k : p.reserve])
        mask0 = crhash(k_tree, tw := sched.mask_tweaks(p.t * h))
        mask1 = crhash(k_tree ^ delta, tw)
        super().__init__(
            p, lpn.Encoder(sched.next_key(), base[: p.k]), group_buffer(buf, p), scratch
        )
        msg = np.empty((p.t, 2 * h + 1, 16), dtype=np.uint8)
        self.roots = np.frombuffer(secrets.token_bytes(16 * p.t), dtype=np.uint8).reshape(p.t, 16)
        groups = -(-p.t // self.trees)
        for g in [*range(1, groups), 0]:  # group 0 last: it stays in the buffer
            a, trees, _ = self._span(g)
            sums = self._grow(g)
            msg[a : a + trees, : 2 * h] = sums.reshape(trees, 2 * h, 16)
            msg[a : a + trees, 2 * h] = sums[:, h - 1, 0] ^ sums[:, h - 1, 1] ^ delta
        self._encode(0)
        self.loaded = 0
        msg[:, : 2 * h] ^= np.stack([mask0, mask1], axis=1).reshape(p.t, 2 * h, 16)
        self.message: U8 = msg

    def _grow(self, g: int) -> U8:
        a, trees, _ = self._span(g)
        rows = trees << self.p.log_leaves
        _, sums = ggm.expand_full(
            self.roots[a : a + trees], self.p.log_leaves, self.buf.out(0, rows), self.scratch
        )
        return sums

    def _encode(self, g: int) -> None:
        _, trees, first = self._span(g)
        self.encoder.encode(self.buf.rows[: trees << self.p.log_leaves], first_row=first)

    def _fill(self, g: int) -> None:
        self._grow(g)
        self._encode(g)


class ReceiverIteration(_Iteration):
    """Receiver: x_j, t_j = its punctured leaf_j xor XOR_r M[idx(j, r)] (and the
    punctured point's fix), from its table, bits and the sender's message."""

    __slots__ = ("bits", "known", "last", "own", "sides")

    def __init__(
        self,
        p: lpn.LpnParams,
        bits: U8,
        base: U8,
        sched: Schedule,
        buf: Blocks | None,
        scratch: ggm.Scratch,
    ) -> None:
        """The first half, before the peer's message: the table, the mask hashes of
        its tree COTs and all n output bits (code words plus one noise bit per tree)."""
        h = p.log_leaves
        encoder = lpn.Encoder(sched.next_key(), base[: p.k], bits[: p.k])
        super().__init__(p, encoder, group_buffer(buf, p), scratch)
        self.sides = np.ascontiguousarray(bits[p.k : p.reserve]).reshape(p.t, h)
        m_tree = np.ascontiguousarray(base[p.k : p.reserve])
        self.own: U8 | None = crhash(m_tree, sched.mask_tweaks(p.t * h)).reshape(p.t, h, 16)
        self.bits = np.empty(p.n, dtype=np.uint8)
        encoder.encode_bits(self.bits)
        # The punctured leaf of tree j: alpha_j = sum_i (1 - side_i) 2^i (see ggm).
        alpha = ((1 - self.sides.astype(np.int64)) << np.arange(h)).sum(axis=1)
        trees = np.arange(p.t)
        group, within = np.divmod(trees, self.trees)
        counts = np.minimum(self.trees, p.t - group * self.trees)
        self.bits[((group * self.trees) << h) + alpha * counts + within] ^= 1
        self.known = np.empty(0, dtype=np.uint8)
        self.last = np.empty(0, dtype=np.uint8)

    def receive(self, raw: bytes) -> None:
        """The second half: unmask the level sums the peer's SPCOT message gives."""
        p, h = self.p, self.p.log_leaves
        if len(raw) != p.spcot_message_bytes or self.own is None:
            raise SnniError("Ferret SPCOT message of the wrong size, or a second one")
        msg = np.frombuffer(raw, dtype=np.uint8).reshape(p.t, 2 * h + 1, 16)
        masked = msg[:, : 2 * h].reshape(p.t, h, 2, 16)
        rows_t, levels = np.indices((p.t, h))
        self.known = masked[rows_t, levels, self.sides.astype(np.intp)] ^ self.own
        self.last = msg[:, 2 * h].copy()
        self.own = None

    def _fill(self, g: int) -> None:
        if self.own is not None:
            raise SnniError("Ferret receiver used before the SPCOT message")
        a, trees, first = self._span(g)
        h = self.p.log_leaves
        rows = trees << h
        _, alpha, total = ggm.expand_punctured(
            self.known[a : a + trees], self.sides[a : a + trees], h, self.buf.out(0, rows),
            self.scratch,
        )  # fmt: skip
        self.encoder.encode(self.buf.rows[:rows], first_row=first)
        self.buf.rows[alpha * trees + np.arange(trees)] ^= self.last[a : a + trees] ^ total

    def tail(self, count: int) -> tuple[U8, U8]:
        """Copies of the last ``count`` (bits, blocks): the next base COTs."""
        return self.bits[self.p.n - count :].copy(), self.tail_blocks(count)
