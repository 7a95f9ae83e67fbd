"""The non-linear layers of secure inference on additively shared fixed point.

Who holds what: for every method, the client (camera) and the server (edge)
each pass their own additive share (uint64 residues mod 2^l) of the same
tensor, and each gets back its own share of the result. Both parties call the
same methods in the same order with same-shaped arrays; shapes are public.
Semi-honest security, as in CrypTFlow2 and Cheetah.

- ``drelu``: XOR shares of 1{x >= 0}. With y = x + 2^k (k = l - 1, or a
  caller's ``bound_bits``), DReLU is bit k of y = bit_k(y0) xor bit_k(y1) xor
  carry, and the carry of the low k bits comes from the millionaires' protocol.
- ``relu``: x * DReLU(x) with the OT multiplexer (one random OT each way).
- ``truncate``: exact arithmetic shift up to -1 ulp, from the exact wrap of the
  locally shifted shares (a comparison on l - s bits): see ``_truncate_flat``; for
  an input the plan bounds in [-2^(l-2), 2^(l-2)), on Ferret, from the shares' top
  bits alone (one OT, no comparison): see ``_truncate_bounded_flat``.
- ``relu_truncate``: the sign read from the shifted shares (l - s - 1 bits).
- ``relu_truncate_capped``: ReLU6, two of those whose comparisons share leaf OTs.
- ``maxpool2d``: separable log-depth trees of max(a, b) = b + ReLU(a - b), with
  every comparison of one tree level packed into a single call.
Large tensors run in batches of ``batch_size`` elements to bound memory.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np
from numpy.typing import NDArray

from secfepas_sdk.errors import SnniError
from secfepas_sdk.snni.channel import Channel
from secfepas_sdk.snni.nonlinear import millionaire, wrap
from secfepas_sdk.snni.nonlinear.layout import layout
from secfepas_sdk.snni.nonlinear.millionaire import greater_than, shares_leaves
from secfepas_sdk.snni.nonlinear.pooling import pool_1d, pool_output_hw
from secfepas_sdk.snni.ot import extension as extension_mod
from secfepas_sdk.snni.ot.bits import pack_bits, packed_size, unpack_bits
from secfepas_sdk.snni.ot.extension import DEFAULT_K
from secfepas_sdk.snni.ot.session import OtSession
from secfepas_sdk.snni.party import Party
from secfepas_sdk.snni.prg import Prg
from secfepas_sdk.snni.ring import Ring

U64 = NDArray[np.uint64]
U8 = NDArray[np.uint8]

DEFAULT_BATCH = 1 << 18
MAX_SHIFT = 32  # the truncation OT carries the wrap share mod 2^shift in a 64-bit slot pair


class NonlinearEngine:
    """One party's end of the non-linear protocols (see module docstring)."""

    def __init__(
        self,
        channel: Channel,
        *,
        party: Party,
        ring: Ring,
        prg: Prg | None = None,
        batch_size: int = DEFAULT_BATCH,
        ot_extension: str | None = None,
        ot_k: int = DEFAULT_K,
        extra_ot_k: tuple[int, ...] = (),
    ) -> None:
        if batch_size < 8:
            raise SnniError("batch_size must be at least 8")
        self.channel = channel
        self.party = Party(party)
        self.ring = ring
        self.prg = prg if prg is not None else Prg()
        self.batch_size = batch_size
        extension = extension_mod.DEFAULT_EXTENSION if ot_extension is None else ot_extension
        self.ot = OtSession(self.party, extension=extension, k=ot_k)  # both parties alike
        # Further SoftSpokenOT sessions (own base OTs, own hash domain) that
        # :meth:`using_ot_k` selects per op: a larger k trades compute for bytes.
        # Under Ferret, k only shapes the bootstrap: every k maps to the one session.
        self._ots: dict[int, OtSession] = {ot_k: self.ot}
        extra = sorted(set(extra_ot_k) - {ot_k})
        if extra and extension == "iknp":
            raise SnniError("extra_ot_k needs the softspoken or ferret OT extension")
        self._aliases = dict.fromkeys(extra, ot_k) if extension == "ferret" else {}
        for i, k in enumerate([] if self._aliases else extra, start=1):
            self._ots[k] = OtSession(self.party, extension=extension, k=k, domain_base=i)

    # -- session ------------------------------------------------------------
    def setup(self) -> None:
        """Base OTs for both directions of every OT session; once, both parties."""
        for session in self._ots.values():  # the same order on both sides
            session.setup(self.channel)
        millionaire.warm_up()  # the numba passes checked now, not in the first layer

    @contextmanager
    def using_ot_k(self, k: int) -> Iterator[None]:
        """Run the enclosed calls on the SoftSpokenOT session with this k (one of
        ``ot_k``/``extra_ot_k``; both parties must select the same)."""
        k = self._aliases.get(k, k)
        if k not in self._ots:
            raise SnniError(f"no OT session with k = {k}; have {sorted(self._ots)}")
        previous, self.ot = self.ot, self._ots[k]
        try:
            yield
        finally:
            self.ot = previous

    @property
    def _client(self) -> bool:
        return self.party is Party.CLIENT

    def _check(self, x: NDArray[np.generic]) -> U64:
        if not isinstance(x, np.ndarray) or x.dtype != np.uint64:
            raise SnniError("shares must be numpy uint64 arrays")
        if not all(session.ready for session in self._ots.values()):
            raise SnniError("NonlinearEngine.setup() must run before any protocol")
        return np.ascontiguousarray(x) & self.ring.mask

    def _batched(
        self, x: U64, op: Callable[[U64], NDArray[np.generic]], rows: int = 1
    ) -> NDArray[np.generic]:
        """``op`` over batches of ``batch_size`` protocol rows (``rows`` per element)."""
        flat = x.reshape(-1)
        if flat.size == 0:
            return op(flat).reshape(x.shape)
        size = self.batch_size // rows
        parts = [op(flat[i : i + size]) for i in range(0, flat.size, size)]
        return np.concatenate(parts).reshape(x.shape)

    # -- public API ------------------------------------------------------------
    def drelu(self, x: U64, *, bound_bits: int | None = None) -> U8:
        """XOR share of 1{x >= 0} per element (uint8 0/1).

        ``bound_bits=k`` is a promise by both callers that -2^k <= x < 2^k (e.g.
        k = l - 1 - s for any output of ``truncate(., s)``); the comparison then
        runs on k bits instead of l - 1, which cuts the traffic proportionally.
        A broken promise gives wrong results, never a leak."""
        xs = self._check(x)
        k = self._check_bound(bound_bits)
        with self.channel.label("drelu"):
            out = self._batched(xs, lambda v: self._drelu_flat(v, k))
        return out.astype(np.uint8)

    def relu(self, x: U64, *, bound_bits: int | None = None) -> U64:
        """Share of max(x, 0); ``bound_bits`` as for :meth:`drelu`."""
        xs = self._check(x)
        k = self._check_bound(bound_bits)
        with self.channel.label("relu"):
            out = self._batched(xs, lambda v: self._relu_flat(v, k))
        return out.astype(np.uint64)

    def truncate(self, x: U64, shift: int, *, bound_bits: int | None = None) -> U64:
        """Share of the arithmetic shift x >> shift (signed), exact or 1 ulp low,
        for x >= -2^(l-1) + 2^shift (the bottom 2^shift ring values are excluded).

        There is no probabilistic failure: the wrap of the shifted shares is
        computed exactly (see :meth:`_truncate_flat`), with a comparison on
        l - shift bits. SecureML-style local truncation would instead fail with
        probability about |x| / 2^(l-1).

        ``bound_bits=k`` is a promise by both callers that -2^k <= x < 2^k (the
        plan's public bounds). With k <= l - 2 on Ferret (suite
        snni-cheetah-ferret-v5) the wrap then comes from the shares' top bits in
        one OT, with no comparison (:meth:`_truncate_bounded_flat`); SoftSpokenOT
        and IKNP (suite snni-cheetah-v3) keep the comparison and their wire. A
        broken promise gives wrong results, never a leak."""
        xs = self._check(x)
        self._check_shift(shift)
        k = self._check_bound(bound_bits)
        bounded = self.ot.extension == "ferret" and k <= self.ring.bits - 2
        flat = self._truncate_bounded_flat if bounded else self._truncate_flat
        with self.channel.label("truncate"):
            out = self._batched(xs, lambda v: flat(v, shift))
        return out.astype(np.uint64)

    def relu_truncate(self, x: U64, shift: int) -> U64:
        """ReLU(x >> shift), exact or 1 ulp low, for x >= -2^(l-1) + 2^shift.

        Cheaper than ``relu(truncate(x))``: the sign is read from the shifted
        shares, so the comparison runs on l - shift - 1 bits (24 instead of 36 at
        l = 37, f = 12); see :meth:`_relu_truncate_flat`."""
        xs = self._check(x)
        self._check_shift(shift)
        with self.channel.label("relu_truncate"):
            out = self._batched(xs, lambda v: self._relu_truncate_flat(v, shift))
        return out.astype(np.uint64)

    def relu_truncate_capped(self, x: U64, shift: int, cap: int) -> U64:
        """min(ReLU(x >> shift), cap) for a public cap (output units; ReLU6), exact or
        1 ulp low, for x - cap 2^shift >= -2^(l-1) + 2^shift: the callers' promise (the
        plan's public bounds, ``snni.schedule.paired_caps``).

        min(relu(t), c) = relu(t) - relu(t - c), both in one call. The server lowers
        its share by c 2^s: the client's share, so its comparison digits, and the low s
        bits (t's dropped carry) stay those of x, and the two comparisons share the
        client's leaf OTs (``greater_than(shared=True)``). That is Ferret's protocol
        (suites snni-cheetah-ferret-v4 and later) where its layout allows it; on SoftSpokenOT and
        IKNP (suite snni-cheetah-v3, whatever the layout) the two run side by side, the
        client lowering its share, as they always did."""
        xs = self._check(x)
        self._check_shift(shift)
        ring = self.ring
        if not 1 <= cap < 1 << (ring.bits - 1 - shift):
            raise SnniError(f"cap must be in 1..2^{ring.bits - 1 - shift} - 1")
        shared = self.ot.extension == "ferret" and shares_leaves(
            layout(self.ot.extension, ring.bits - shift - 1)
        )
        if not shared:
            lowered = (
                ring.sub(xs, np.full(xs.shape, cap << shift, np.uint64)) if self._client else xs
            )
            both = self.relu_truncate(np.stack([xs, lowered]), shift)
            return np.asarray(ring.sub(both[0], both[1]), dtype=np.uint64)
        with self.channel.label("relu_truncate"):  # two comparisons per element
            out = self._batched(xs, lambda v: self._capped_flat(v, shift, cap), rows=2)
        return out.astype(np.uint64)

    def maxpool2d(
        self,
        x_nchw: U64,
        kernel: tuple[int, int],
        stride: tuple[int, int],
        pads: tuple[int, int, int, int] = (0, 0, 0, 0),
        *,
        bound_bits: int | None = None,
        drop_bits: int = 0,
    ) -> U64:
        """Share of max-pooling over (kh, kw) windows; padding is ignored (-inf).

        Separable: a max over each row segment (1 x kw), then over columns of
        those (kh x 1). Overlapping windows (stride < kernel) then share their
        row maxima: 3x3 stride 2 costs about 6 comparisons per output, not 8.
        max(a, b) is computed from a - b, so inputs must lie in [-2^(l-2), 2^(l-2))
        (a fixed-point range the plan's choice of l must guarantee anyway).
        ``bound_bits=k`` promises -2^k <= x < 2^k (k <= l - 2), so that each
        comparison runs on k + 1 bits (k = l - 1 - s after ``relu_truncate(., s)``).

        ``drop_bits=s > 0`` makes each comparison approximate: it reads the sign of
        a - b from the shares shifted right by s (see :meth:`_drelu_flat`), so it
        runs on s fewer bits (k + 2 - s), and may pick b when 0 <= a - b < 2^s.
        The result is still one of the window's values, and at most
        levels * (2^s - 1) below the true maximum (levels = tree depth, 4 for
        3x3): callers choose s so that this is below the output's final ulp.
        With ``drop_bits`` the default (and largest) k is l - 3."""
        xs = self._check(x_nchw)
        top_k = self.ring.bits - (3 if drop_bits else 2)
        if bound_bits is not None and not 1 <= bound_bits <= top_k:
            raise SnniError(f"maxpool2d bound_bits must be in 1..{top_k}")
        k = top_k if bound_bits is None else bound_bits
        # a - b lies in (-2^(k+1), 2^(k+1)); with a drop, one more bit keeps it
        # >= -2^K + 2^s as _drelu_flat needs (s <= k + 1).
        diff_bound = k + 1 + (1 if drop_bits else 0)
        if not 0 <= drop_bits <= k + 1:
            raise SnniError(f"maxpool2d drop_bits must be in 0..{k + 1}")
        if xs.ndim != 4:
            raise SnniError(f"maxpool2d needs an NCHW tensor, got shape {xs.shape}")
        top, left, bottom, right = pads
        pool_output_hw((xs.shape[2], xs.shape[3]), kernel, stride, pads)  # validates the geometry

        def relu_of(diff: U64) -> U64:  # one ReLU call per tree level of pool_1d
            out = self._batched(diff, lambda v: self._relu_flat(v, diff_bound, drop_bits))
            return out.astype(np.uint64)

        with self.channel.label("maxpool"):
            rows = pool_1d(
                xs, (1, kernel[1]), (1, stride[1]), (0, left, 0, right), self.ring, relu_of
            )
            return pool_1d(
                rows, (kernel[0], 1), (stride[0], 1), (top, 0, bottom, 0), self.ring, relu_of
            )

    # -- protocols on flat batches ------------------------------------------
    def _check_shift(self, shift: int) -> None:
        if not 1 <= shift <= min(MAX_SHIFT, self.ring.bits - 2):
            raise SnniError(f"shift must be in 1..{min(MAX_SHIFT, self.ring.bits - 2)}")

    def _check_bound(self, bound_bits: int | None) -> int:
        full = self.ring.bits - 1
        if bound_bits is None:
            return full
        if not 1 <= bound_bits <= full:
            raise SnniError(f"bound_bits must be in 1..{full}, got {bound_bits}")
        return int(bound_bits)

    def _drelu_flat(self, x: U64, bound: int, drop: int = 0) -> U8:
        """1{x >= 0} for -2^k <= x < 2^k (k = bound; k = l - 1 is the whole ring).

        y = x + 2^k lies in [0, 2^(k+1)), so DReLU(x) is bit k of y, and the
        shares reduced mod 2^(k+1) still share y. Bit k of y0 + y1 is
        bit_k(y0) xor bit_k(y1) xor carry, where the carry of the low k bits is
        1{(y0 mod 2^k) > 2^k - 1 - (y1 mod 2^k)}: the millionaires' protocol
        on k bits (client's a against server's b).

        ``drop = s > 0`` (approximate, for max-pooling): each party shifts its
        reduced share right by s, u_i = (y_i mod 2^(k+1)) >> s. Then
        u0 + u1 = floor(y / 2^s) - c mod 2^(k+1-s) (c in {0, 1} the dropped
        carry), which for y >= 2^s lies in [0, 2^(k+1-s)), so its bit k - s is
        exact for x < 0 (floor(y/2^s) < 2^(k-s)) and for x >= 2^s (floor(y/2^s)
        >= 2^(k-s) + 1), and may be 0 for 0 <= x < 2^s. The millionaires' protocol
        runs on k - s bits. Needs -2^k + 2^s <= x < 2^k. The parties' inputs to
        it are still functions of their own shares only: same security."""
        y = (x + (np.uint64(1) << np.uint64(bound))) if self._client else x
        if drop:
            y = (y & np.uint64((1 << (bound + 1)) - 1)) >> np.uint64(drop)
        bits = bound - drop
        low_mask = np.uint64((1 << bits) - 1)
        low = y & low_mask
        value = low if self._client else low_mask - low
        carry = greater_than(self.channel, self.party, self.ot, value, bits)
        return ((y >> np.uint64(bits)) & np.uint64(1)).astype(np.uint8) ^ carry

    def _mux(self, d: U8, x: U64) -> U64:
        return self._mux_with(d, x, None)[0]

    def _mux_with(self, d: U8, x: U64, extra: tuple[U8, int] | None) -> tuple[U64, U64 | None]:
        """Share of d * x for XOR-shared bit d and additively shared x; optionally
        (``extra`` = (m, s)) also shares mod 2^s of (d0 xor d1) m0 m1
        (:mod:`.wrap`), in the same flights.

        Each party is the sender for its own x_i: with random-OT keys (k0, k1) it
        keeps r = d_i x_i - k0 and sends y = (1 - d_i) x_i - r - k1, so a receiver
        choosing c = d_peer obtains (d_i xor c) x_i - r. One random OT each way
        plus one l-bit word each way per element. Flights: client u; server u, y
        (and the 1-of-4 u); client y (and the 1-of-4 messages)."""
        n = int(x.size)
        width = self.ring.bits
        mask = self.ring.mask
        dd = d.astype(np.uint64)
        ch = self.channel
        f_share: U64 | None = None
        if self._client:
            k = self.ot.rot_recv(ch, d, width)
            k0, k1 = self.ot.rot_send(ch, n, width)
            peer = unpack_bits(ch.recv_exact(packed_size(n, width)), n, width)
            # Read the 1-of-4 OT's u (already on its way) before answering.
            keys = None if extra is None else wrap.and_wrap_keys(ch, self.ot, n, extra[1])
            r = (dd * x - k0) & mask
            y = ((np.uint64(1) - dd) * x - r - k1) & mask
            ch.send(pack_bits(y, width))
            if extra is not None and keys is not None:
                f_share = wrap.and_wrap_client(ch, self.ot, self.prg, keys, extra[0], d, extra[1])
        else:
            k0, k1 = self.ot.rot_send(ch, n, width)
            k = self.ot.rot_recv(ch, d, width)
            r = (dd * x - k0) & mask
            y = ((np.uint64(1) - dd) * x - r - k1) & mask
            ch.send(pack_bits(y, width))
            opened = None
            if extra is not None:
                opened = wrap.and_wrap_open(ch, self.ot, extra[0], d, extra[1])
            peer = unpack_bits(ch.recv_exact(packed_size(n, width)), n, width)
            if extra is not None and opened is not None:
                f_share = wrap.and_wrap_close(ch, self.ot, opened, n, extra[1])
        got = (k + dd * np.asarray(peer, dtype=np.uint64)) & mask
        return np.asarray((r + got) & mask, dtype=np.uint64), f_share

    def _relu_flat(self, x: U64, bound: int, drop: int = 0) -> U64:
        return self._mux(self._drelu_flat(x, bound, drop), x)

    def _truncate_flat(self, x: U64, shift: int) -> U64:
        """x >> shift from the shifted shares and one comparison on l - shift bits.

        With x' = x + 2^(l-1) and u_i = x'_i >> s (l - s bits each):
        floor(x'/2^s) = u0 + u1 - w' 2^(l-s) + c, with w' = 1{u0 + u1 >= 2^(l-s)}
        the wrap of the shifted shares and c in {0, 1} the dropped low carry.
        w' equals the true wrap of x'0 + x'1 except when x' < 2^s, i.e. for the
        bottom 2^s values of the ring, which this op does not support. w' comes
        from the millionaires' protocol on l - s bits (u0 > 2^(l-s) - 1 - u1) and
        is converted to additive shares mod 2^s by one OT (the server offers, the
        client chooses; :mod:`.wrap`)."""
        ring = self.ring
        xp = (x + np.uint64(1 << (ring.bits - 1))) & ring.mask if self._client else x
        u = xp >> np.uint64(shift)
        bits = ring.bits - shift
        u_mask = np.uint64((1 << bits) - 1)
        wbit = greater_than(
            self.channel, self.party, self.ot, u if self._client else u_mask - u, bits
        )
        return self._unwrap(u, wbit, shift, ring.bits - 1, "xor")

    def _unwrap(self, u: U64, wbit: U8, shift: int, offset_log2: int, join: str) -> U64:
        """u0 + u1 - w 2^(l-s) - 2^(offset - s): the shifted shares less their wrap
        w = wbit0 (join) wbit1 and the client's offset 2^offset, shifted.

        The bit goes to arithmetic mod 2^s (:mod:`.wrap`). The server offers, so its
        share is ready once it has sent: a plan that ends here sends the output share
        in the same flight (no extra round)."""
        ring = self.ring
        if self._client:
            w_share = wrap.xor_choose(self.channel, self.ot, wbit, shift)
        else:
            w_share = wrap.xor_offer(self.channel, self.ot, self.prg, wbit, shift, join=join)
        out = u - (w_share << np.uint64(ring.bits - shift))
        if self._client:
            out = out - np.uint64(1 << (offset_log2 - shift))
        return np.asarray(out & ring.mask, dtype=np.uint64)

    def _truncate_bounded_flat(self, x: U64, shift: int) -> U64:
        """x >> shift for -2^(l-2) <= x < 2^(l-2), from the shares' top bits (one OT).

        The client adds 2^(l-2): y = x + 2^(l-2) lies in [0, 2^(l-1)), so its top bit
        is 0, and the wrap of y0 + y1 over 2^l is w = m0 or m1 (m_i = bit l-1 of y_i:
        both set, the sum carries; one set, the sum's top bit would be 1 without a
        carry). As in :meth:`_truncate_flat`, with u_i = y_i >> s,
        u0 + u1 - w 2^(l-s) = floor(y / 2^s) - c (c in {0, 1} the dropped low carry),
        and floor(y / 2^s) = floor(x / 2^s) + 2^(l-2-s). w is converted to additive
        shares mod 2^s by one correlated OT (:func:`.wrap.xor_offer`, ``join="or"``):
        the parties' inputs are bits of their own shares, as in every protocol here.
        This is Cheetah's truncation with a known most significant bit."""
        ring = self.ring
        top = ring.bits - 1
        y = (x + np.uint64(1 << (top - 1))) & ring.mask if self._client else x
        m = ((y >> np.uint64(top)) & np.uint64(1)).astype(np.uint8)
        return self._unwrap(y >> np.uint64(shift), m, shift, top - 1, "or")

    def _relu_truncate_flat(self, x: U64, shift: int) -> U64:
        """ReLU(x >> shift) with the comparison on l - shift - 1 bits instead of l - 1.

        With x' = x + 2^(l-1) and u_i = x'_i >> s, u0 + u1 = T + w 2^(l-s) where
        T = floor(x' / 2^s) - c (c the dropped low carry), so mod 2^(l-s) the
        shares u_i already share T, and MSB(T) (bit l-1-s) is the sign of x: a
        millionaires' protocol on the low l-s-1 bits of the u_i gives it. T and
        floor(x'/2^s) differ only by c, which flips MSB(T) only where the output
        is 0 or -1 anyway (0 <= x < 2^s), or for x < -2^(l-1) + 2^s, the bottom
        2^s values of the ring, which this op does not support. Then
        ReLU = d (u0 + u1 - 2^(l-1-s)) - 2^(l-s) d w, and with d = 1 the wrap is
        w = m0 and m1 (m_i = MSB(x'_i)): one multiplexer, and the wrap's OTs in its
        flights (:mod:`.wrap`)."""
        ring = self.ring
        xp = (x + np.uint64(1 << (ring.bits - 1))) & ring.mask if self._client else x
        bits = ring.bits - shift - 1
        low_mask = np.uint64((1 << bits) - 1)
        low = (xp >> np.uint64(shift)) & low_mask
        carry = greater_than(
            self.channel, self.party, self.ot, low if self._client else low_mask - low, bits
        )
        return self._relu_truncate_finish(xp, carry, shift)

    def _capped_flat(self, x: U64, shift: int, cap: int) -> U64:
        """:meth:`relu_truncate_capped` on one batch: 2n comparisons, n leaf OT sets."""
        ring = self.ring
        n = int(x.size)
        bits = ring.bits - shift - 1
        low_mask = np.uint64((1 << bits) - 1)
        if self._client:
            xp = (x + np.uint64(1 << (ring.bits - 1))) & ring.mask
            low = (xp >> np.uint64(shift)) & low_mask
            both = np.concatenate([xp, xp])
        else:
            both = np.concatenate([x, (x - np.uint64(cap << shift)) & ring.mask])
            low = low_mask - ((both >> np.uint64(shift)) & low_mask)
        carry = greater_than(self.channel, self.party, self.ot, low, bits, shared=True)
        out = self._relu_truncate_finish(both, carry, shift)
        return np.asarray(ring.sub(out[:n], out[n:]), dtype=np.uint64)

    def _relu_truncate_finish(self, xp: U64, carry: U8, shift: int) -> U64:
        """ReLU(x >> shift) from x' = x + 2^(l-1) (shares) and the low bits' carry."""
        ring = self.ring
        u = xp >> np.uint64(shift)
        bits = ring.bits - shift - 1
        d = ((u >> np.uint64(bits)) & np.uint64(1)).astype(np.uint8) ^ carry
        local = u - np.uint64(1 << (ring.bits - 1 - shift)) if self._client else u
        m = ((xp >> np.uint64(ring.bits - 1)) & np.uint64(1)).astype(np.uint8)
        out, g_share = self._mux_with(d, local & ring.mask, (m, shift))
        if g_share is None:  # pragma: no cover - _mux_with always fills it here
            raise SnniError("internal: missing wrap share")
        out = out - (g_share << np.uint64(ring.bits - shift))
        return np.asarray(out & ring.mask, dtype=np.uint64)
