"""Coefficient packings (Cheetah) that turn conv and matmul into polynomial products.

Conv (stride 1, valid, on an already padded input of one group): a tile of Cp
channels of hh x ww input pixels sits at coefficient c*hh*ww + i*ww + j; the
kernel of output channel o is placed reversed, w[o,c,di,dj] at
O - (c*hh*ww + di*ww + dj) with O = (Cp-1)*hh*ww + (kh-1)*ww + (kw-1), so the
product's coefficient O + i*ww + j is the conv output (i, j) of the tile. As
long as Cp*hh*ww <= N no wrap-around term lands on an output coefficient.

Several output channels share one output polynomial: with S = Cp*hh*ww the
kernel polynomial of a block of n_o output channels is sum_o X^(o*S) K_o. The
product x*K_o spans [0, S+O), so block member o's garbage ends at (o+1)*S + O,
exactly below member o+1's outputs at (o+1)*S + O + ...; with n_o*S <= N the
negacyclic wrap-around only reaches coefficients below O. This trades
multiplies for fewer output ciphertexts (the expensive part here).

Matmul y = W x: a chunk of Kc inputs sits at coefficients 0..Kc-1 and the
kernel polynomial holds W[o, k] at o*Kc + Kc-1-k, so coefficient o*Kc + Kc-1 is
the dot product of row o; rows per polynomial n_o satisfy (n_o+1)*Kc - 1 <= N.

A :class:`Layout` lists, for each output ciphertext, the (input ciphertext,
kernel) pairs summed into it, and where each output value sits. All of this is
public: it depends only on shapes.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from secfepas_sdk.errors import InvalidValueError, SnniError
from secfepas_sdk.snni.he.prices import EDGE_TIME, TilingPrices

U64 = NDArray[np.uint64]
I64 = NDArray[np.int64]


@dataclass(frozen=True, slots=True, kw_only=True)
class ConvPacking:
    """Tiling of one group's stride-1 valid conv into polynomials of degree n."""

    channels: int
    height: int
    width: int
    out_channels: int
    kh: int
    kw: int
    n: int
    cp: int
    th: int
    tw: int
    no: int = 1

    def __post_init__(self) -> None:
        sizes = (self.channels, self.out_channels, self.kh, self.kw, self.cp, self.th, self.tw)
        if min(*sizes, self.no) < 1:
            raise InvalidValueError("conv packing sizes must be positive")
        if self.kh > self.height or self.kw > self.width:
            raise InvalidValueError("kernel larger than the padded input")
        if self.no * self.span > self.n:
            raise InvalidValueError("a tile does not fit in one polynomial")

    @property
    def span(self) -> int:
        """S = Cp*hh*ww: coefficients of one input tile."""
        return self.cp * self.hh * self.ww

    @property
    def n_ob(self) -> int:
        return math.ceil(self.out_channels / self.no)

    @property
    def out_h(self) -> int:
        return self.height - self.kh + 1

    @property
    def out_w(self) -> int:
        return self.width - self.kw + 1

    @property
    def hh(self) -> int:
        return self.th + self.kh - 1

    @property
    def ww(self) -> int:
        return self.tw + self.kw - 1

    @property
    def n_cb(self) -> int:
        return math.ceil(self.channels / self.cp)

    @property
    def n_ti(self) -> int:
        return math.ceil(self.out_h / self.th)

    @property
    def n_tj(self) -> int:
        return math.ceil(self.out_w / self.tw)

    @property
    def n_tiles(self) -> int:
        return self.n_ti * self.n_tj

    @property
    def n_in(self) -> int:
        return self.n_cb * self.n_tiles

    @property
    def n_out(self) -> int:
        return self.n_ob * self.n_tiles

    @property
    def n_kernels(self) -> int:
        return self.n_ob * self.n_cb

    @property
    def n_mul(self) -> int:
        return self.n_in * self.n_ob

    def pack_input(self, x: U64) -> U64:
        """(C, H, W) residues -> (n_in, n) polynomials, ordered (cb, ti, tj)."""
        if x.shape != (self.channels, self.height, self.width):
            raise SnniError(
                f"conv input shape {x.shape} != {self.channels, self.height, self.width}"
            )
        big = np.zeros(
            (
                self.n_cb * self.cp,
                self.n_ti * self.th + self.kh - 1,
                self.n_tj * self.tw + self.kw - 1,
            ),
            dtype=np.uint64,
        )
        big[: self.channels, : self.height, : self.width] = x
        win = np.lib.stride_tricks.sliding_window_view(big, (self.hh, self.ww), axis=(1, 2))
        win = win[:, :: self.th, :: self.tw]  # (Cb*cp, n_ti, n_tj, hh, ww)
        win = win.reshape(self.n_cb, self.cp, self.n_ti, self.n_tj, self.hh, self.ww)
        tiles = win.transpose(0, 2, 3, 1, 4, 5).reshape(self.n_in, self.cp * self.hh * self.ww)
        out = np.zeros((self.n_in, self.n), dtype=np.uint64)
        out[:, : tiles.shape[1]] = tiles
        return out

    def _kernel_positions(self) -> I64:
        c = np.arange(self.cp)[:, None, None]
        di = np.arange(self.kh)[None, :, None]
        dj = np.arange(self.kw)[None, None, :]
        origin = (self.cp - 1) * self.hh * self.ww + (self.kh - 1) * self.ww + (self.kw - 1)
        return np.asarray(origin - (c * self.hh * self.ww + di * self.ww + dj), dtype=np.int64)

    def support(self) -> I64:
        """The coefficients every kernel polynomial may use, in :meth:`kernel_rows` order
        (o, c, di, dj): no * cp * kh * kw distinct places, the same for every block."""
        pos = self._kernel_positions()[None, :, :, :] + (
            np.arange(self.no)[:, None, None, None] * self.span
        )
        return np.asarray(pos.reshape(-1), dtype=np.int64)

    def kernel_rows(self, w: I64, ob_start: int = 0, ob_stop: int | None = None) -> I64:
        """The weights of the kernel polynomials of output blocks [ob_start, ob_stop) at
        their :meth:`support`: (count * n_cb, no * cp * kh * kw), ordered (ob, cb)."""
        stop = self.n_ob if ob_stop is None else ob_stop
        count = stop - ob_start
        lo, hi = ob_start * self.no, min(w.shape[0], stop * self.no)
        padded = np.zeros((count * self.no, self.n_cb * self.cp, self.kh, self.kw), np.int64)
        padded[: hi - lo, : self.channels] = w[lo:hi]
        blocks = padded.reshape(count, self.no, self.n_cb, self.cp, self.kh, self.kw)
        blocks = blocks.transpose(0, 2, 1, 3, 4, 5)  # (ob, cb, o, c, di, dj)
        return np.ascontiguousarray(blocks.reshape(count * self.n_cb, -1))

    def kernels(self, w: I64, ob_start: int = 0, ob_stop: int | None = None) -> I64:
        """Signed kernel polynomials of output blocks [ob_start, ob_stop): (count * n_cb, n),
        ordered (ob, cb)."""
        rows = self.kernel_rows(w, ob_start, ob_stop)
        out = np.zeros((rows.shape[0], self.n), dtype=np.int64)
        out[:, self.support()] = rows
        return out

    def terms(self) -> Iterator[list[tuple[int, int]]]:
        """For each output ciphertext (ob, ti, tj): its (input, kernel) pairs."""
        for ob in range(self.n_ob):
            for t in range(self.n_tiles):
                yield [(cb * self.n_tiles + t, ob * self.n_cb + cb) for cb in range(self.n_cb)]

    def output_index(self) -> I64:
        """Flat index into (n_out, n) of every output value in (M, out_h, out_w) order."""
        origin = (self.cp - 1) * self.hh * self.ww + (self.kh - 1) * self.ww + (self.kw - 1)
        o = np.arange(self.out_channels)[:, None, None]
        i = np.arange(self.out_h)[None, :, None]
        j = np.arange(self.out_w)[None, None, :]
        ct = (o // self.no) * self.n_tiles + (i // self.th) * self.n_tj + (j // self.tw)
        pos = (o % self.no) * self.span + origin + (i % self.th) * self.ww + (j % self.tw)
        return np.asarray(ct * self.n + pos, dtype=np.int64).reshape(-1)

    def l1_bound(self, w: I64) -> float:
        """Largest sum of |w| over the output channels sharing one output polynomial."""
        per_out = np.abs(w).reshape(w.shape[0], -1).sum(axis=1)
        padded = np.zeros(self.n_ob * self.no)
        padded[: per_out.size] = per_out
        return float(padded.reshape(self.n_ob, self.no).sum(axis=1).max())

    @staticmethod
    def choose(
        *,
        channels: int,
        height: int,
        width: int,
        out_channels: int,
        kh: int,
        kw: int,
        n: int,
        prices: TilingPrices = EDGE_TIME,
    ) -> ConvPacking:
        """The tiling with the least modelled cost (ms), searched over tile sizes."""
        out_h, out_w = height - kh + 1, width - kw + 1
        if out_h < 1 or out_w < 1:
            raise SnniError("conv kernel larger than its padded input")
        best: tuple[float, ConvPacking] | None = None
        tw_options = sorted({math.ceil(out_w / k) for k in range(1, out_w + 1)})
        for tw in tw_options:
            ww = tw + kw - 1
            for th in sorted({math.ceil(out_h / k) for k in range(1, out_h + 1)}):
                hh = th + kh - 1
                if hh * ww > n:
                    continue
                cp_max = min(channels, n // (hh * ww))
                n_t = math.ceil(out_h / th) * math.ceil(out_w / tw)
                for cp in sorted({math.ceil(channels / k) for k in range(1, channels + 1)}):
                    if cp > cp_max:
                        continue
                    no = min(out_channels, n // (cp * hh * ww))
                    n_in = math.ceil(channels / cp) * n_t
                    n_ob = math.ceil(out_channels / no)
                    cost = (
                        prices.per_input * n_in
                        + prices.per_product * n_in * n_ob
                        + prices.per_reply * n_ob * n_t
                    )
                    if best is None or cost < best[0]:
                        best = (
                            cost,
                            ConvPacking(
                                channels=channels, height=height, width=width,
                                out_channels=out_channels, kh=kh, kw=kw, n=n, cp=cp, th=th,
                                tw=tw, no=no,
                            ),
                        )  # fmt: skip
        if best is None:
            raise SnniError(f"a {kh}x{kw} kernel does not fit in a degree-{n} polynomial")
        return best[1]


def depthwise_pairs(packing: ConvPacking, phases: int) -> list[list[int]]:
    """Per output block ob, the input blocks cb that hold its channels' phases.

    A depthwise conv run as one dense conv has block-diagonal weights: output
    channel o reads only the phase channels [o*P, (o+1)*P). Every other kernel
    block is zero by structure (public), so its product is never computed."""
    pairs = []
    c_out, no, cp = packing.out_channels, packing.no, packing.cp
    for ob in range(packing.n_ob):
        lo = ob * no * phases
        hi = min((ob + 1) * no, c_out) * phases
        pairs.append(list(range(lo // cp, min(math.ceil(hi / cp), packing.n_cb))))
    return pairs


def choose_depthwise(
    *,
    channels: int,
    phases: int,
    height: int,
    width: int,
    kh: int,
    kw: int,
    n: int,
    prices: TilingPrices = EDGE_TIME,
) -> ConvPacking:
    """The least modelled-time tiling of a depthwise conv of ``channels`` channels (each
    stacked from ``phases`` polyphase components) as a block-diagonal dense conv.

    An output block of no channels reads only its own no * P input channels, so with
    cp = m * no * P each output block's inputs sit in one input block and a tile costs
    one product per output ciphertext; the product fits when no * cp * hh * ww <= N.
    m = 1 packs as many channels per output as per input polynomial; m > 1 puts the
    channels of m output blocks in one input polynomial: m times fewer uploads (the
    dearest part on a camera's link) for the same products and replies."""
    out_h, out_w = height - kh + 1, width - kw + 1
    if out_h < 1 or out_w < 1:
        raise SnniError("conv kernel larger than its padded input")
    best: tuple[float, ConvPacking] | None = None
    for tw in sorted({math.ceil(out_w / k) for k in range(1, out_w + 1)}):
        ww = tw + kw - 1
        for th in sorted({math.ceil(out_h / k) for k in range(1, out_h + 1)}):
            hh = th + kh - 1
            room = n // (phases * hh * ww)  # no * cp / P channels' tiles per polynomial
            if room < 1:
                continue
            n_t = math.ceil(out_h / th) * math.ceil(out_w / tw)
            for no in sorted({math.ceil(channels / k) for k in range(1, channels + 1)}):
                if no * no > room:
                    continue
                n_ob = math.ceil(channels / no)
                # Only the uploads fall with m: take the fewest input blocks the room
                # allows, with the smallest m that gives that many.
                n_ib = math.ceil(n_ob / min(room // (no * no), n_ob))
                m = math.ceil(n_ob / n_ib)
                cost = prices.per_input * (n_ib * n_t) + (prices.per_product + prices.per_reply) * (
                    n_ob * n_t
                )
                if best is None or cost < best[0]:
                    best = (
                        cost,
                        ConvPacking(
                            channels=channels * phases, height=height, width=width,
                            out_channels=channels, kh=kh, kw=kw, n=n,
                            cp=m * no * phases, th=th, tw=tw, no=no,
                        ),
                    )  # fmt: skip
    if best is None:
        raise SnniError(f"a {kh}x{kw} kernel does not fit in a degree-{n} polynomial")
    return best[1]


@dataclass(frozen=True, slots=True, kw_only=True)
class MatmulPacking:
    """y (M) = W (M, K) x (K) with chunks of kc inputs and n_o rows per polynomial."""

    in_features: int
    out_features: int
    n: int
    kc: int

    def __post_init__(self) -> None:
        if min(self.in_features, self.out_features, self.kc) < 1:
            raise InvalidValueError("matmul packing sizes must be positive")
        if self.rows_per_poly < 1:
            raise InvalidValueError("matmul chunk too large for the polynomial degree")

    @property
    def rows_per_poly(self) -> int:
        return min(self.out_features, (self.n + 1) // self.kc - 1)

    @property
    def n_kc(self) -> int:
        return math.ceil(self.in_features / self.kc)

    @property
    def n_ob(self) -> int:
        return math.ceil(self.out_features / self.rows_per_poly)

    @property
    def n_in(self) -> int:
        return self.n_kc

    @property
    def n_out(self) -> int:
        return self.n_ob

    @property
    def n_kernels(self) -> int:
        return self.n_ob * self.n_kc

    @property
    def n_mul(self) -> int:
        return self.n_ob * self.n_kc

    def pack_input(self, x: U64) -> U64:
        if x.shape != (self.in_features,):
            raise SnniError(f"matmul input shape {x.shape} != ({self.in_features},)")
        out = np.zeros((self.n_kc, self.n), dtype=np.uint64)
        padded = np.zeros(self.n_kc * self.kc, dtype=np.uint64)
        padded[: self.in_features] = x
        out[:, : self.kc] = padded.reshape(self.n_kc, self.kc)
        return out

    def kernels_all(self, w: I64) -> I64:
        """Signed kernel polynomials (n_ob * n_kc, n) ordered (ob, kc)."""
        r = self.rows_per_poly
        padded = np.zeros((self.n_ob * r, self.n_kc * self.kc), dtype=np.int64)
        padded[: self.out_features, : self.in_features] = w
        blocks = padded.reshape(self.n_ob, r, self.n_kc, self.kc).transpose(0, 2, 1, 3)
        out = np.zeros((self.n_ob, self.n_kc, self.n), dtype=np.int64)
        o = np.arange(r)[:, None]
        k = np.arange(self.kc)[None, :]
        out[:, :, o * self.kc + self.kc - 1 - k] = blocks
        return out.reshape(self.n_ob * self.n_kc, self.n)

    def terms(self) -> Iterator[list[tuple[int, int]]]:
        for ob in range(self.n_ob):
            yield [(kc, ob * self.n_kc + kc) for kc in range(self.n_kc)]

    def output_index(self) -> I64:
        o = np.arange(self.out_features)
        r = self.rows_per_poly
        return np.asarray((o // r) * self.n + (o % r) * self.kc + self.kc - 1, dtype=np.int64)

    @staticmethod
    def choose(
        *, in_features: int, out_features: int, n: int, prices: TilingPrices = EDGE_TIME
    ) -> MatmulPacking:
        best: tuple[float, MatmulPacking] | None = None
        for parts in range(1, in_features + 1):
            kc = math.ceil(in_features / parts)
            if kc > n // 2:
                continue
            pack = MatmulPacking(in_features=in_features, out_features=out_features, n=n, kc=kc)
            cost = (
                prices.per_input * pack.n_in
                + prices.per_product * pack.n_mul
                + prices.per_reply * pack.n_out
            )
            if best is None or cost < best[0]:
                best = (cost, pack)
            if kc <= 64:
                break
        if best is None:
            raise SnniError("matmul does not fit the polynomial degree")
        return best[1]
