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
amortised iteration traffic.
"""

from __future__ import annotations

import secrets

import numpy as np
from numpy.typing import NDArray

from secfepas_sdk.errors import SnniError
from secfepas_sdk.snni.channel import Channel
from secfepas_sdk.snni.ot import ggm, lpn
from secfepas_sdk.snni.ot.crhash import crhash, crhash_u64, tweaks
from secfepas_sdk.snni.ot.iknp import MAX_OTS_PER_CALL
from secfepas_sdk.snni.ot.softspoken import SoftSpokenReceiver, SoftSpokenSender

U64 = NDArray[np.uint64]
U8 = NDArray[np.uint8]

_TREES_PER_GROUP = 64  # trees expanded and encoded together: bounds the GGM scratch memory
_HASH_CHUNK = 1 << 18
ITERATION_LABEL = "ot-iteration"  # channel label of the iteration messages (traffic accounting)
_INTERNAL = 1 << 32  # added to the domain for the SPCOT mask hashes (OT outputs use the domain)


def _check(count: int, width: int) -> None:
    if not 0 <= count <= MAX_OTS_PER_CALL:
        raise SnniError(f"OT batch of {count} is out of range")
    if not 1 <= width <= 64:
        raise SnniError(f"OT output width must be in 1..64 bits, got {width}")


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


class FerretSender:
    """COT sender: holds Delta and the q blocks; also the random-OT sender."""

    __slots__ = ("_base", "_blocks", "_counter", "_delta", "_params", "_sched", "_used")

    def __init__(
        self, base: SoftSpokenSender, s_bits: U8, *, domain: int, main: lpn.LpnParams = lpn.MAIN
    ) -> None:
        if lpn.SETUP.n < main.reserve:
            raise SnniError(f"Ferret cannot bootstrap {main.name} from {lpn.SETUP.name}")
        self._base: SoftSpokenSender | None = base
        self._delta = np.packbits(s_bits.astype(np.uint8), bitorder="little").reshape(1, 16)
        self._sched = _Schedule(domain)
        self._blocks = np.empty((0, 16), dtype=np.uint8)
        self._used = 0
        self._counter = 0
        self._params = main

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
        setup, first = self._expand(lpn.SETUP, base)
        self._blocks, second = self._expand(self._params, setup[-self._params.reserve :])
        return [first, second]

    def bootstrap_send(self, channel: Channel, messages: list[U8]) -> None:
        """Step 3: the SPCOT messages of step 2."""
        with channel.label(ITERATION_LABEL):
            for msg in messages:
                channel.send(msg)

    def _iterate(self, channel: Channel, p: lpn.LpnParams, base: U8) -> U8:
        out, msg = self._expand(p, base)
        with channel.label(ITERATION_LABEL):
            channel.send(msg)
        return out

    def _expand(self, p: lpn.LpnParams, base: U8) -> tuple[U8, U8]:
        h = p.log_leaves
        k_lpn = np.ascontiguousarray(base[: p.k])
        k_tree = base[p.k : p.reserve].reshape(p.t, h, 16)
        mask0 = crhash(k_tree.reshape(-1, 16), tw := self._sched.mask_tweaks(p.t * h))
        mask1 = crhash(k_tree.reshape(-1, 16) ^ self._delta, tw)
        key = self._sched.next_key()
        out = np.empty((p.n, 16), dtype=np.uint8)
        msg = np.empty((p.t, 2 * h + 1, 16), dtype=np.uint8)
        leaves_per_tree = 1 << h
        for g in range(0, p.t, _TREES_PER_GROUP):
            trees = min(_TREES_PER_GROUP, p.t - g)
            roots = np.frombuffer(secrets.token_bytes(16 * trees), dtype=np.uint8)
            leaves, sums = ggm.expand_full(roots.reshape(trees, 16), h)
            msg[g : g + trees, : 2 * h] = sums.reshape(trees, 2 * h, 16)
            flat = leaves.view(np.uint64).reshape(trees, leaves_per_tree, 2)
            total = np.bitwise_xor.reduce(flat, axis=1).view(np.uint8).reshape(trees, 16)
            msg[g : g + trees, 2 * h] = total ^ self._delta
            rows = slice(g * leaves_per_tree, (g + trees) * leaves_per_tree)
            out[rows] = leaves.reshape(-1, 16)
            lpn.encode(key, k_lpn, out[rows], first_row=rows.start)
        masks = np.stack([mask0, mask1], axis=1).reshape(p.t, 2 * h, 16)
        msg[:, : 2 * h] ^= masks
        return out, msg

    def _take(self, channel: Channel, count: int) -> U8:
        """The next ``count`` q blocks, running iterations as the buffer empties."""
        parts: list[U8] = []
        need = count
        while need:
            usable = self._blocks.shape[0] - self._params.reserve
            if self._used == usable:
                base = self._blocks[usable:].copy()
                self._blocks = np.empty((0, 16), dtype=np.uint8)
                self._blocks = self._iterate(channel, self._params, base)
                self._used = 0
                continue
            m = min(need, usable - self._used)
            parts.append(self._blocks[self._used : self._used + m])
            self._used += m
            need -= m
        return np.concatenate(parts) if parts else np.empty((0, 16), dtype=np.uint8)

    def extend(self, channel: Channel, count: int) -> U8:
        """Raw random COTs: q_j with the peer's t_j = q_j xor x_j Delta (x_j its random bits)."""
        if self._base is not None:
            raise SnniError("Ferret used before bootstrap()")
        _check(count, 64)
        return self._take(channel, count)

    def _hash_pairs(self, q: U8, width: int) -> tuple[U64, U64]:
        count = q.shape[0]
        k0 = np.empty(count, dtype=np.uint64)
        k1 = np.empty(count, dtype=np.uint64)
        for lo in range(0, count, _HASH_CHUNK):
            rows = np.ascontiguousarray(q[lo : lo + _HASH_CHUNK])
            tw = tweaks(self._counter, rows.shape[0], self._sched.domain)
            self._counter += rows.shape[0]
            k0[lo : lo + rows.shape[0]] = crhash_u64(rows, tw, width)
            rows ^= self._delta
            k1[lo : lo + rows.shape[0]] = crhash_u64(rows, tw, width)
        return k0, k1

    def random_ot(self, channel: Channel, count: int, width: int) -> tuple[U64, U64]:
        """(K^0, K^1) for the peer's chosen bits: reads one bit per OT."""
        _check(count, width)
        q = self.extend(channel, count)  # a fresh array: safe to modify
        raw = channel.recv_exact((count + 7) // 8)
        d = np.unpackbits(np.frombuffer(raw, dtype=np.uint8), count=count, bitorder="little")
        q ^= (d * np.uint8(0xFF))[:, None] & self._delta
        return self._hash_pairs(q, width)

    def random_choice_ot(self, channel: Channel, count: int, width: int) -> tuple[U64, U64]:
        """(K^0, K^1) for random choices the peer learns from its COT bits: no message."""
        _check(count, width)
        return self._hash_pairs(self.extend(channel, count), width)


class FerretReceiver:
    """COT receiver: holds the random bits x and the t blocks; also the random-OT receiver."""

    __slots__ = ("_base", "_bits", "_blocks", "_counter", "_params", "_sched", "_used")

    def __init__(
        self, base: SoftSpokenReceiver, *, domain: int, main: lpn.LpnParams = lpn.MAIN
    ) -> None:
        self._base: SoftSpokenReceiver | None = base
        self._sched = _Schedule(domain)
        self._blocks = np.empty((0, 16), dtype=np.uint8)
        self._bits = np.empty(0, dtype=np.uint8)
        self._used = 0
        self._counter = 0
        self._params = main

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
        with channel.label(ITERATION_LABEL):
            return [channel.recv_exact(p.spcot_message_bytes) for p in (lpn.SETUP, self._params)]

    def bootstrap_finish(self, base: tuple[U8, U8], messages: list[bytes]) -> None:
        """Step 4, no I/O: the receiver's side of both iterations."""
        bits, blocks = self._expand(lpn.SETUP, base[0], base[1], messages[0])
        tail = -self._params.reserve
        self._bits, self._blocks = self._expand(
            self._params, bits[tail:], blocks[tail:], messages[1]
        )

    def _iterate(self, channel: Channel, p: lpn.LpnParams, bits: U8, base: U8) -> tuple[U8, U8]:
        with channel.label(ITERATION_LABEL):
            raw = channel.recv_exact(p.spcot_message_bytes)
        return self._expand(p, bits, base, raw)

    def _expand(self, p: lpn.LpnParams, bits: U8, base: U8, raw: bytes) -> tuple[U8, U8]:
        h = p.log_leaves
        m_lpn = np.ascontiguousarray(base[: p.k])
        u_lpn = np.ascontiguousarray(bits[: p.k])
        sides = bits[p.k : p.reserve].reshape(p.t, h)
        m_tree = np.ascontiguousarray(base[p.k : p.reserve])
        own = crhash(m_tree, self._sched.mask_tweaks(p.t * h)).reshape(p.t, h, 16)
        key = self._sched.next_key()
        msg = np.frombuffer(raw, dtype=np.uint8).reshape(p.t, 2 * h + 1, 16)
        masked = msg[:, : 2 * h].reshape(p.t, h, 2, 16)
        rows_t, levels = np.indices((p.t, h))
        known = masked[rows_t, levels, sides.astype(np.intp)] ^ own
        out = np.empty((p.n, 16), dtype=np.uint8)
        out_bits = np.zeros(p.n, dtype=np.uint8)
        leaves_per_tree = 1 << h
        for g in range(0, p.t, _TREES_PER_GROUP):
            trees = min(_TREES_PER_GROUP, p.t - g)
            g_row = g * leaves_per_tree
            rows = slice(g_row, g_row + trees * leaves_per_tree)
            leaves, alpha = ggm.expand_punctured(
                known[g : g + trees], sides[g : g + trees], h, out=out[rows]
            )
            leaves[np.arange(trees), alpha] = msg[g : g + trees, 2 * h] ^ ggm.xor_all(leaves)
            out_bits[rows.start + np.arange(trees) * leaves_per_tree + alpha] = 1
            lpn.encode(
                key,
                m_lpn,
                out[rows],
                base_bits=u_lpn,
                out_bits=out_bits[rows],
                first_row=rows.start,
            )
        return out_bits, out

    def _take(self, channel: Channel, count: int) -> tuple[U8, U8]:
        bit_parts: list[U8] = []
        parts: list[U8] = []
        need = count
        while need:
            usable = self._blocks.shape[0] - self._params.reserve
            if self._used == usable:
                bits = self._bits[usable:].copy()
                base = self._blocks[usable:].copy()
                self._blocks = np.empty((0, 16), dtype=np.uint8)
                self._bits, self._blocks = self._iterate(channel, self._params, bits, base)
                self._used = 0
                continue
            m = min(need, usable - self._used)
            bit_parts.append(self._bits[self._used : self._used + m])
            parts.append(self._blocks[self._used : self._used + m])
            self._used += m
            need -= m
        if not parts:
            return np.empty(0, dtype=np.uint8), np.empty((0, 16), dtype=np.uint8)
        return np.concatenate(bit_parts), np.concatenate(parts)

    def extend(self, channel: Channel, count: int) -> tuple[U8, U8]:
        """Raw random COTs: (x_j, t_j) with the peer's q_j = t_j xor x_j Delta."""
        if self._base is not None:
            raise SnniError("Ferret used before bootstrap()")
        _check(count, 64)
        return self._take(channel, count)

    def _hash(self, t: U8, width: int) -> U64:
        count = t.shape[0]
        out = np.empty(count, dtype=np.uint64)
        for lo in range(0, count, _HASH_CHUNK):
            rows = np.ascontiguousarray(t[lo : lo + _HASH_CHUNK])
            tw = tweaks(self._counter, rows.shape[0], self._sched.domain)
            self._counter += rows.shape[0]
            out[lo : lo + rows.shape[0]] = crhash_u64(rows, tw, width)
        return out

    def random_ot(self, channel: Channel, choices: U8, width: int) -> U64:
        """K^{c_j} = H(j, t_j) for chosen bits c: sends d = x xor c (one bit per OT)."""
        count = int(choices.size)
        _check(count, width)
        c = choices.reshape(-1).astype(np.uint8)
        if count and int(c.max()) > 1:
            raise SnniError("OT choices must be bits")
        x, t = self.extend(channel, count)
        channel.send(np.packbits(x ^ c, bitorder="little"))
        return self._hash(t, width)

    def random_choice_ot(self, channel: Channel, count: int, width: int) -> tuple[U8, U64]:
        """(x_j, K^{x_j}) for random choices x: nothing is sent."""
        _check(count, width)
        x, t = self.extend(channel, count)
        return x, self._hash(t, width)
