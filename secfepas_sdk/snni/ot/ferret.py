"""Ferret silent OT (Yang, Weng, Lan, Zhang, Wang; CCS 2020), semi-honest.

A correlated-OT generator with a global Delta: the sender (holder of Delta, the
same s as the SoftSpokenOT instance below it) gets blocks q_j, the receiver random
bits x_j and blocks t_j = q_j xor x_j * Delta, i.e. the correlation the other
extensions give, so the TMMO hash of :mod:`.crhash` and every OT flavour above stay.

One iteration (parameters in :mod:`.lpn`) consumes ``reserve`` = k + t*h base COTs:
- t single-point COTs (GGM trees of 2^h leaves, :mod:`.ggm`): for level i of tree j
  the sender sends H(K) xor (left sum) and H(K xor Delta) xor (right sum) with base
  COT (K, M = K xor b Delta); the receiver unmasks side b, so its punctured index is
  alpha_j = NOT b (MSB first), uniform in the tree because b is a random COT bit.
  A last block per tree, Delta xor XOR(leaves), gives the receiver leaf alpha xor Delta.
  That is one message, sender to receiver, of 16 t (2h + 1) bytes; no reply.
- primal-LPN encoding of the k remaining base COTs, added to the noise vectors.
It yields n COTs, of which the last ``reserve`` bootstrap the next iteration.
Bootstrap (in the session's setup): SoftSpokenOT makes the base COTs of a small
iteration (``lpn.SETUP``), whose output makes those of the first main one
(``lpn.MAIN``), which also runs in the setup so that small inferences never wait
for an iteration; later ones run when the buffer empties (one more flight each
10 million OTs).
Semi-honest only: Ferret's malicious consistency check is not run.

Random OTs: the receiver sends d = x xor c (one bit per OT) for its choices c; the
sender shifts q by d Delta. Random-choice OTs (:meth:`random_choice_ot`) keep x as
the choice and send nothing. Per OT that is 1 bit (or 0) plus about 0.45 bits of
amortised iteration traffic. A call that crosses an iteration sends its d bits in
two messages, one per side of the boundary, because each party's COT buffer is
rewritten in place by the next iteration (no second 170 MB buffer).

Leaf order: trees are grown in groups (about 8 MiB of leaves), node-major inside a
group (:mod:`.ggm`), and the LPN code runs on each group right after it. So the
t noise blocks of the regular noise are strided sets of output positions instead of
runs. That is the same LPN instance up to a public permutation of the outputs: the
code's columns are i.i.d. (each output's D rows come from its own place in the
index stream), so permuting them leaves their distribution unchanged, and the noise
still has exactly one point in each of t fixed, disjoint sets of 2^h positions.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import numpy as np
from numpy.typing import NDArray

from secfepas_sdk.errors import SnniError
from secfepas_sdk.snni.channel import Channel
from secfepas_sdk.snni.ot import ggm, lpn
from secfepas_sdk.snni.ot.aesblocks import Blocks
from secfepas_sdk.snni.ot.crhash import crhash, hash_into, tweaks
from secfepas_sdk.snni.ot.iknp import MAX_OTS_PER_CALL
from secfepas_sdk.snni.ot.softspoken import SoftSpokenReceiver, SoftSpokenSender

U64 = NDArray[np.uint64]
U8 = NDArray[np.uint8]

_GROUP_BYTES = 1 << 23  # leaves per tree group: few numpy calls per level, bounded scratch
ITERATION_LABEL = "ot-iteration"  # channel label of the iteration messages (traffic accounting)
_INTERNAL = 1 << 32  # added to the domain for the SPCOT mask hashes (OT outputs use the domain)


def _check(count: int, width: int) -> None:
    if not 0 <= count <= MAX_OTS_PER_CALL:
        raise SnniError(f"OT batch of {count} is out of range")
    if not 1 <= width <= 64:
        raise SnniError(f"OT output width must be in 1..64 bits, got {width}")


def _groups(p: lpn.LpnParams) -> tuple[int, ggm.Scratch]:
    """Trees per group (leaves of about 8 MiB) and the GGM scratch for one group."""
    trees = max(1, min(p.t, _GROUP_BYTES // (16 << p.log_leaves)))
    return trees, ggm.Scratch(trees << (p.log_leaves - 1))


class _Schedule:
    """State both parties keep identically: the iteration counter and its parameters."""

    __slots__ = ("domain", "iteration", "mask_counter")

    def __init__(self, domain: int) -> None:
        self.domain = domain
        self.iteration = 0
        self.mask_counter = 0

    def next_key(self) -> bytes:
        key = lpn.matrix_key(self.iteration, self.domain)
        self.iteration += 1
        return key

    def mask_tweaks(self, count: int) -> U8:
        tw = tweaks(self.mask_counter, count, self.domain + _INTERNAL)
        self.mask_counter += count
        return tw


class _Cursor:
    """Both parties' view of one direction's COT buffer: how many COTs of the current
    iteration are used. ``spans`` cuts a request at the iteration boundaries, the same
    way on both sides."""

    __slots__ = ("params", "used")

    def __init__(self, params: lpn.LpnParams) -> None:
        self.params = params
        self.used = params.n - params.reserve  # empty until the bootstrap fills it

    @property
    def usable(self) -> int:
        return self.params.n - self.params.reserve

    def spans(self, count: int) -> Iterator[tuple[int, int] | None]:
        """(lo, hi) rows to use next, or None where an iteration must run first."""
        need = count
        while need:
            if self.used == self.usable:
                yield None
                self.used = 0
                continue
            m = min(need, self.usable - self.used)
            lo = self.used
            self.used += m
            need -= m
            yield lo, lo + m


class FerretSender:
    """COT sender: holds Delta and the q blocks; also the random-OT sender."""

    __slots__ = ("_base", "_buf", "_counter", "_cursor", "_delta", "_sched")

    def __init__(
        self, base: SoftSpokenSender, s_bits: U8, *, domain: int, main: lpn.LpnParams = lpn.MAIN
    ) -> None:
        if lpn.SETUP.n < main.reserve:
            raise SnniError(f"Ferret cannot bootstrap {main.name} from {lpn.SETUP.name}")
        self._base: SoftSpokenSender | None = base
        self._delta = np.packbits(s_bits.astype(np.uint8), bitorder="little").reshape(1, 16)
        self._sched = _Schedule(domain)
        self._buf: Blocks | None = None
        self._cursor = _Cursor(main)
        self._counter = 0

    def bootstrap_rows(self, channel: Channel) -> U8:
        """Bootstrap step 1: the SoftSpokenOT base COTs (the peer's receiver sends rows)."""
        if self._base is None:
            raise SnniError("Ferret bootstrap already done")
        base = self._base.extend(channel, lpn.SETUP.reserve)
        self._base = None
        return base

    def bootstrap_compute(self, base: U8) -> list[U8]:
        """Step 2, no I/O: the setup iteration, then the first main one from its output;
        returns their SPCOT messages (the peer's sender computes at the same time)."""
        p = self._cursor.params
        setup = Blocks(lpn.SETUP.n)
        first = self._expand(lpn.SETUP, base, setup)
        self._buf = Blocks(p.n)
        second = self._expand(p, setup.rows[-p.reserve :], self._buf)
        self._cursor.used = 0
        return [first, second]

    def bootstrap_send(self, channel: Channel, messages: list[U8]) -> None:
        """Step 3: the SPCOT messages of step 2."""
        with channel.label(ITERATION_LABEL):
            for msg in messages:
                channel.send(msg)

    def _expand(self, p: lpn.LpnParams, base: U8, dest: Blocks) -> U8:
        """One iteration from ``base`` (reserve blocks, not in ``dest``) into ``dest``;
        returns the SPCOT message. The roots are fresh secrets; all of it is ours."""
        h = p.log_leaves
        k_tree = np.ascontiguousarray(base[p.k : p.reserve])
        mask0 = crhash(k_tree, tw := self._sched.mask_tweaks(p.t * h))
        mask1 = crhash(k_tree ^ self._delta, tw)
        encoder = lpn.Encoder(self._sched.next_key(), base[: p.k])
        msg = np.empty((p.t, 2 * h + 1, 16), dtype=np.uint8)
        roots = np.frombuffer(secrets.token_bytes(16 * p.t), dtype=np.uint8).reshape(p.t, 16)
        per_group, scratch = _groups(p)
        for g in range(0, p.t, per_group):
            trees = min(per_group, p.t - g)
            lo, hi = g << h, (g + trees) << h
            _, sums = ggm.expand_full(roots[g : g + trees], h, dest.out(lo, hi), scratch)
            msg[g : g + trees, : 2 * h] = sums.reshape(trees, 2 * h, 16)
            msg[g : g + trees, 2 * h] = sums[:, h - 1, 0] ^ sums[:, h - 1, 1] ^ self._delta
            encoder.encode(dest.rows[lo:hi], first_row=lo)
        msg[:, : 2 * h] ^= np.stack([mask0, mask1], axis=1).reshape(p.t, 2 * h, 16)
        return msg

    def _rows(self, channel: Channel, count: int) -> Iterator[U8]:
        """The next ``count`` q blocks as views of the buffer, span by span; an
        iteration (with its message) runs when the buffer is used up, so a view is
        valid only until the next one is asked for."""
        buf = self._buf
        if self._base is not None or buf is None:
            raise SnniError("Ferret used before bootstrap()")
        for span in self._cursor.spans(count):
            if span is None:
                p = self._cursor.params
                base = buf.rows[p.n - p.reserve :].copy()
                msg = self._expand(p, base, buf)
                with channel.label(ITERATION_LABEL):
                    channel.send(msg)
                continue
            yield buf.rows[span[0] : span[1]]

    def extend(self, channel: Channel, count: int) -> U8:
        """Raw random COTs: q_j with the peer's t_j = q_j xor x_j Delta (x_j its random bits)."""
        _check(count, 64)
        parts = [rows.copy() for rows in self._rows(channel, count)]
        return np.concatenate(parts) if parts else np.empty((0, 16), dtype=np.uint8)

    def _keys(self, channel: Channel, count: int, width: int, *, chosen: bool) -> tuple[U64, U64]:
        k0 = np.empty(count, dtype=np.uint64)
        k1 = np.empty(count, dtype=np.uint64)
        pos = 0
        for q in self._rows(channel, count):
            m = q.shape[0]
            flip = None
            if chosen:  # the peer's d = x xor c for these rows
                raw = np.frombuffer(channel.recv_exact((m + 7) // 8), dtype=np.uint8)
                flip = np.unpackbits(raw, count=m, bitorder="little")
            out0, out1 = k0[pos : pos + m], k1[pos : pos + m]
            hash_into(
                q, self._counter, self._sched.domain, width, out0,
                delta=self._delta, flip=flip, out_delta=out1,
            )  # fmt: skip
            self._counter += m
            pos += m
        return k0, k1

    def random_ot(self, channel: Channel, count: int, width: int) -> tuple[U64, U64]:
        """(K^0, K^1) for the peer's chosen bits: reads one bit per OT."""
        _check(count, width)
        return self._keys(channel, count, width, chosen=True)

    def random_choice_ot(self, channel: Channel, count: int, width: int) -> tuple[U64, U64]:
        """(K^0, K^1) for random choices the peer learns from its COT bits: no message."""
        _check(count, width)
        return self._keys(channel, count, width, chosen=False)


class FerretReceiver:
    """COT receiver: holds the random bits x and the t blocks; also the random-OT receiver."""

    __slots__ = ("_base", "_bits", "_buf", "_counter", "_cursor", "_sched")

    def __init__(
        self, base: SoftSpokenReceiver, *, domain: int, main: lpn.LpnParams = lpn.MAIN
    ) -> None:
        self._base: SoftSpokenReceiver | None = base
        self._sched = _Schedule(domain)
        self._buf: Blocks | None = None
        self._bits = np.empty(0, dtype=np.uint8)
        self._cursor = _Cursor(main)
        self._counter = 0

    def bootstrap_rows(self, channel: Channel) -> tuple[U8, U8]:
        """Bootstrap step 1: random-choice SoftSpokenOT base COTs (sends the rows)."""
        if self._base is None:
            raise SnniError("Ferret bootstrap already done")
        count = lpn.SETUP.reserve
        raw = np.frombuffer(secrets.token_bytes((count + 7) // 8), dtype=np.uint8)
        bits = np.unpackbits(raw, count=count, bitorder="little")
        blocks = self._base.extend(channel, bits)
        self._base = None
        return bits, blocks

    def bootstrap_recv(self, channel: Channel) -> list[bytes]:
        """Step 3: the peer's two SPCOT messages (setup, then first main iteration)."""
        p = self._cursor.params
        with channel.label(ITERATION_LABEL):
            return [channel.recv_exact(q.spcot_message_bytes) for q in (lpn.SETUP, p)]

    def bootstrap_finish(self, base: tuple[U8, U8], messages: list[bytes]) -> None:
        """Step 4, no I/O: the receiver's side of both iterations."""
        p = self._cursor.params
        setup, setup_bits = Blocks(lpn.SETUP.n), np.empty(lpn.SETUP.n, dtype=np.uint8)
        self._encode(lpn.SETUP, base[0], base[1], setup, setup_bits)
        self._add_noise(lpn.SETUP, base[0], base[1], messages[0], setup, setup_bits)
        self._buf, self._bits = Blocks(p.n), np.empty(p.n, dtype=np.uint8)
        tail_bits, tail = setup_bits[lpn.SETUP.n - p.reserve :], setup.rows[-p.reserve :]
        self._encode(p, tail_bits, tail, self._buf, self._bits)
        self._add_noise(p, tail_bits, tail, messages[1], self._buf, self._bits)
        self._cursor.used = 0

    def _encode(self, p: lpn.LpnParams, bits: U8, base: U8, dest: Blocks, dest_bits: U8) -> None:
        """First half of an iteration, before the peer's message (so that it overlaps
        the sender's work): the LPN code words of the k base COTs, written over
        ``dest``/``dest_bits``. ``base``/``bits`` (reserve COTs) are ours, not in dest."""
        encoder = lpn.Encoder(self._sched.next_key(), base[: p.k], bits[: p.k])
        encoder.encode(dest.rows, out_bits=dest_bits, assign=True)

    def _add_noise(
        self, p: lpn.LpnParams, bits: U8, base: U8, raw: bytes, dest: Blocks, dest_bits: U8
    ) -> None:
        """Second half: the punctured GGM trees from the peer's SPCOT message, XORed
        into the code words (the regular noise: one point per tree)."""
        h = p.log_leaves
        if len(raw) != p.spcot_message_bytes:
            raise SnniError("Ferret SPCOT message of the wrong size")
        sides = bits[p.k : p.reserve].reshape(p.t, h)
        m_tree = np.ascontiguousarray(base[p.k : p.reserve])
        own = crhash(m_tree, self._sched.mask_tweaks(p.t * h)).reshape(p.t, h, 16)
        msg = np.frombuffer(raw, dtype=np.uint8).reshape(p.t, 2 * h + 1, 16)
        masked = msg[:, : 2 * h].reshape(p.t, h, 2, 16)
        rows_t, levels = np.indices((p.t, h))
        known = masked[rows_t, levels, sides.astype(np.intp)] ^ own
        per_group, scratch = _groups(p)
        leaves_buf = Blocks(per_group << h)
        for g in range(0, p.t, per_group):
            trees = min(per_group, p.t - g)
            lo, hi = g << h, (g + trees) << h
            _, alpha, total = ggm.expand_punctured(
                known[g : g + trees], sides[g : g + trees], h, leaves_buf.out(0, hi - lo), scratch
            )
            words = dest.rows[lo:hi].view(np.uint64)
            words ^= leaves_buf.rows[: hi - lo].view(np.uint64)
            at = lo + alpha * trees + np.arange(trees)
            dest.rows[at] ^= msg[g : g + trees, 2 * h] ^ total
            dest_bits[at] ^= 1

    def _rows(self, channel: Channel, count: int) -> Iterator[tuple[U8, U8]]:
        """The next ``count`` (x, t) as views of the buffers, span by span (see the
        sender's ``_rows``): an iteration reads the peer's message when they run out."""
        buf = self._buf
        if self._base is not None or buf is None:
            raise SnniError("Ferret used before bootstrap()")
        for span in self._cursor.spans(count):
            if span is None:
                p = self._cursor.params
                tail = p.n - p.reserve
                bits, base = self._bits[tail:].copy(), buf.rows[tail:].copy()
                self._encode(p, bits, base, buf, self._bits)  # while the peer expands
                with channel.label(ITERATION_LABEL):
                    raw = channel.recv_exact(p.spcot_message_bytes)
                self._add_noise(p, bits, base, raw, buf, self._bits)
                continue
            lo, hi = span
            yield self._bits[lo:hi], buf.rows[lo:hi]

    def extend(self, channel: Channel, count: int) -> tuple[U8, U8]:
        """Raw random COTs: (x_j, t_j) with the peer's q_j = t_j xor x_j Delta."""
        _check(count, 64)
        bit_parts: list[U8] = []
        parts: list[U8] = []
        for x, t in self._rows(channel, count):
            bit_parts.append(x.copy())
            parts.append(t.copy())
        if not parts:
            return np.empty(0, dtype=np.uint8), np.empty((0, 16), dtype=np.uint8)
        return np.concatenate(bit_parts), np.concatenate(parts)

    def _keys(self, channel: Channel, count: int, width: int, choices: U8 | None) -> tuple[U8, U64]:
        out = np.empty(count, dtype=np.uint64)
        xs = np.empty(count, dtype=np.uint8) if choices is None else choices
        pos = 0
        for x, t in self._rows(channel, count):
            m = t.shape[0]
            if choices is not None:
                channel.send(np.packbits(x ^ choices[pos : pos + m], bitorder="little"))
            else:
                xs[pos : pos + m] = x
            hash_into(t, self._counter, self._sched.domain, width, out[pos : pos + m])
            self._counter += m
            pos += m
        return xs, out

    def random_ot(self, channel: Channel, choices: U8, width: int) -> U64:
        """K^{c_j} = H(j, t_j) for chosen bits c: sends d = x xor c (one bit per OT)."""
        count = int(choices.size)
        _check(count, width)
        c = choices.reshape(-1).astype(np.uint8)
        if count and int(c.max()) > 1:
            raise SnniError("OT choices must be bits")
        return self._keys(channel, count, width, c)[1]

    def random_choice_ot(self, channel: Channel, count: int, width: int) -> tuple[U8, U64]:
        """(x_j, K^{x_j}) for random choices x: nothing is sent."""
        _check(count, width)
        return self._keys(channel, count, width, None)
