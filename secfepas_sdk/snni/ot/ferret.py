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
two messages, one per side of the boundary. Outputs are computed one tree group at
a time as they are used (:mod:`.ferret_iter`), so a party holds about 55 MB for both
directions instead of two whole iterations (350 MB).

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
from secfepas_sdk.snni.ot.crhash import hash_into, tweaks
from secfepas_sdk.snni.ot.ferret_iter import ReceiverIteration, SenderIteration, scratch_for
from secfepas_sdk.snni.ot.iknp import MAX_OTS_PER_CALL
from secfepas_sdk.snni.ot.softspoken import SoftSpokenReceiver, SoftSpokenSender

U64 = NDArray[np.uint64]
U8 = NDArray[np.uint8]

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

    __slots__ = ("_base", "_buf", "_counter", "_cursor", "_delta", "_it", "_sched", "_scratch")

    def __init__(
        self,
        base: SoftSpokenSender,
        s_bits: U8,
        *,
        domain: int,
        main: lpn.LpnParams = lpn.MAIN,
        scratch: ggm.Scratch | None = None,
    ) -> None:
        """``scratch``: GGM level buffers, shared with the party's receiver (one
        group is grown at a time)."""
        if lpn.SETUP.n < main.reserve:
            raise SnniError(f"Ferret cannot bootstrap {main.name} from {lpn.SETUP.name}")
        self._base: SoftSpokenSender | None = base
        self._delta = np.packbits(s_bits.astype(np.uint8), bitorder="little").reshape(1, 16)
        self._sched = _Schedule(domain)
        self._it: SenderIteration | None = None
        self._buf: Blocks | None = None
        self._scratch = scratch if scratch is not None else scratch_for(lpn.SETUP, main)
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
        setup = self._start(lpn.SETUP, base)
        first, tail = setup.message, setup.tail_blocks(self._cursor.params.reserve)
        del setup
        self._it = self._start(self._cursor.params, tail)
        self._cursor.used = 0
        return [first, self._it.message]

    def bootstrap_send(self, channel: Channel, messages: list[U8]) -> None:
        """Step 3: the SPCOT messages of step 2."""
        with channel.label(ITERATION_LABEL):
            for msg in messages:
                channel.send(msg)

    def _start(self, p: lpn.LpnParams, base: U8) -> SenderIteration:
        it = SenderIteration(p, base, self._sched, self._delta, self._buf, self._scratch)
        self._buf = it.buf
        return it

    def _spans(self, channel: Channel, count: int) -> Iterator[tuple[SenderIteration, int, int]]:
        """The next ``count`` q blocks as (iteration, lo, hi) spans; an iteration (with
        its message) runs when the current one is used up."""
        if self._base is not None or self._it is None:
            raise SnniError("Ferret used before bootstrap()")
        for span in self._cursor.spans(count):
            if span is None:
                tail = self._it.tail_blocks(self._cursor.params.reserve)
                self._it = None  # its table and buffer go before the next one's
                self._it = self._start(self._cursor.params, tail)
                with channel.label(ITERATION_LABEL):
                    channel.send(self._it.message)
                continue
            yield self._it, span[0], span[1]

    def extend(self, channel: Channel, count: int) -> U8:
        """Raw random COTs: q_j with the peer's t_j = q_j xor x_j Delta (x_j its random bits)."""
        _check(count, 64)
        out = np.empty((count, 16), dtype=np.uint8)
        pos = 0
        for it, lo, hi in self._spans(channel, count):
            for at, q in it.pieces(lo, hi):
                out[pos + at - lo : pos + at - lo + q.shape[0]] = q
            pos += hi - lo
        return out

    def _keys(self, channel: Channel, count: int, width: int, *, chosen: bool) -> tuple[U64, U64]:
        k0 = np.empty(count, dtype=np.uint64)
        k1 = np.empty(count, dtype=np.uint64)
        pos = 0
        for it, lo, hi in self._spans(channel, count):
            m = hi - lo
            flip = None
            if chosen:  # the peer's d = x xor c for these rows
                raw = np.frombuffer(channel.recv_exact((m + 7) // 8), dtype=np.uint8)
                flip = np.unpackbits(raw, count=m, bitorder="little")
            for at, q in it.pieces(lo, hi):
                a, b = at - lo, at - lo + q.shape[0]
                hash_into(
                    q, self._counter, self._sched.domain, width, k0[pos + a : pos + b],
                    delta=self._delta, flip=None if flip is None else flip[a:b],
                    out_delta=k1[pos + a : pos + b],
                )  # fmt: skip
                self._counter += b - a
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

    __slots__ = ("_base", "_buf", "_counter", "_cursor", "_it", "_sched", "_scratch")

    def __init__(
        self,
        base: SoftSpokenReceiver,
        *,
        domain: int,
        main: lpn.LpnParams = lpn.MAIN,
        scratch: ggm.Scratch | None = None,
    ) -> None:
        self._base: SoftSpokenReceiver | None = base
        self._sched = _Schedule(domain)
        self._it: ReceiverIteration | None = None
        self._buf: Blocks | None = None
        self._scratch = scratch if scratch is not None else scratch_for(lpn.SETUP, main)
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
        setup = self._start(lpn.SETUP, base[0], base[1])
        setup.receive(messages[0])
        bits, blocks = setup.tail(self._cursor.params.reserve)
        del setup
        self._it = self._start(self._cursor.params, bits, blocks)
        self._it.receive(messages[1])
        self._cursor.used = 0

    def _start(self, p: lpn.LpnParams, bits: U8, base: U8) -> ReceiverIteration:
        it = ReceiverIteration(p, bits, base, self._sched, self._buf, self._scratch)
        self._buf = it.buf
        return it

    def _spans(self, channel: Channel, count: int) -> Iterator[tuple[ReceiverIteration, int, int]]:
        """(iteration, lo, hi) spans of the next ``count`` COTs (see the sender's):
        an iteration reads the peer's message when the current one runs out."""
        if self._base is not None or self._it is None:
            raise SnniError("Ferret used before bootstrap()")
        for span in self._cursor.spans(count):
            if span is None:
                bits, base = self._it.tail(self._cursor.params.reserve)
                self._it = None
                # The bits now, while the peer grows its trees; then its message.
                self._it = it = self._start(self._cursor.params, bits, base)
                with channel.label(ITERATION_LABEL):
                    it.receive(channel.recv_exact(self._cursor.params.spcot_message_bytes))
                continue
            yield self._it, span[0], span[1]

    def extend(self, channel: Channel, count: int) -> tuple[U8, U8]:
        """Raw random COTs: (x_j, t_j) with the peer's q_j = t_j xor x_j Delta."""
        _check(count, 64)
        xs = np.empty(count, dtype=np.uint8)
        out = np.empty((count, 16), dtype=np.uint8)
        pos = 0
        for it, lo, hi in self._spans(channel, count):
            xs[pos : pos + hi - lo] = it.bits[lo:hi]
            for at, t in it.pieces(lo, hi):
                out[pos + at - lo : pos + at - lo + t.shape[0]] = t
            pos += hi - lo
        return xs, out

    def _keys(self, channel: Channel, count: int, width: int, choices: U8 | None) -> tuple[U8, U64]:
        out = np.empty(count, dtype=np.uint64)
        xs = np.empty(count, dtype=np.uint8) if choices is None else choices
        pos = 0
        for it, lo, hi in self._spans(channel, count):
            m = hi - lo
            x = it.bits[lo:hi]
            if choices is not None:  # before the blocks: the peer hashes meanwhile
                channel.send(np.packbits(x ^ choices[pos : pos + m], bitorder="little"))
            else:
                xs[pos : pos + m] = x
            for at, t in it.pieces(lo, hi):
                a, b = at - lo, at - lo + t.shape[0]
                hash_into(t, self._counter, self._sched.domain, width, out[pos + a : pos + b])
                self._counter += b - a
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
