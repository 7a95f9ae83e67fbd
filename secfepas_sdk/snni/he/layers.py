"""Conv (stride, padding, groups) and matmul as polynomial layouts.

A strided conv becomes a stride-1 conv by polyphase decomposition: input
phase (a, b) is x[:, a::s, b::s] and kernel phase (a, b) is w[..., a::s, b::s],
stacked as extra channels. Both parties do this on their own shares, so it
costs nothing. Groups become independent convs whose ciphertexts share one
message. Everything here is public geometry; weights only enter through
``kernel_polys`` on the server.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
from numpy.typing import NDArray

from secfepas_sdk.errors import SnniError
from secfepas_sdk.snni.geometry import Window
from secfepas_sdk.snni.he.bulk import SparseKernels
from secfepas_sdk.snni.he.packing import (
    ConvPacking,
    MatmulPacking,
    choose_depthwise,
    depthwise_pairs,
)
from secfepas_sdk.snni.he.prices import EDGE_TIME, TilingPrices

U64 = NDArray[np.uint64]
I64 = NDArray[np.int64]


@dataclass(frozen=True, slots=True, kw_only=True)
class ConvSpec:
    """A 2-D conv on one image: input (C, H, W), weights (M, C/groups, kh, kw)."""

    in_shape: tuple[int, int, int]
    out_channels: int
    kernel: tuple[int, int]
    stride: tuple[int, int] = (1, 1)
    pads: tuple[int, int, int, int] = (0, 0, 0, 0)  # top, left, bottom, right
    groups: int = 1

    def __post_init__(self) -> None:
        c, h, w = self.in_shape
        if min(c, h, w, self.out_channels, *self.kernel, *self.stride, self.groups) < 1:
            raise SnniError("conv sizes must be positive")
        if min(self.pads) < 0:
            raise SnniError("conv pads must be non-negative")
        if c % self.groups or self.out_channels % self.groups:
            raise SnniError("channels must divide evenly into groups")
        if self.out_shape[1] < 1 or self.out_shape[2] < 1:
            raise SnniError("conv output would be empty")

    @property
    def out_shape(self) -> tuple[int, int, int]:
        _, h, w = self.in_shape
        window = Window(kernel=self.kernel, stride=self.stride, pads=self.pads)
        return (self.out_channels, *window.out_hw(h, w))

    @property
    def phase_kernel(self) -> tuple[int, int]:
        return (
            math.ceil(self.kernel[0] / self.stride[0]),
            math.ceil(self.kernel[1] / self.stride[1]),
        )

    @property
    def phases(self) -> tuple[int, int]:
        """Polyphase components kept per axis: phase a >= k would hold only zero weights
        (a 1x1 stride-2 conv keeps one phase, i.e. it just subsamples)."""
        return min(self.stride[0], self.kernel[0]), min(self.stride[1], self.kernel[1])

    @property
    def group_in_channels(self) -> int:
        """Channels of one group after polyphase stacking."""
        return self.in_shape[0] // self.groups * self.phases[0] * self.phases[1]

    @property
    def phase_size(self) -> tuple[int, int]:
        _, ho, wo = self.out_shape
        kh, kw = self.phase_kernel
        return ho + kh - 1, wo + kw - 1

    def phase_input(self, x: U64) -> U64:
        """Pad and polyphase one share: (C, H, W) -> (groups, C/g * sh * sw, H', W')."""
        if x.shape != self.in_shape:
            raise SnniError(f"conv input shape {x.shape} != {self.in_shape}")
        c, h, w = self.in_shape
        sh, sw = self.stride
        hp, wp = self.phase_size
        t, left = self.pads[0], self.pads[1]
        big = np.zeros((c, hp * sh, wp * sw), dtype=np.uint64)
        rows = min(h, hp * sh - t)
        cols = min(w, wp * sw - left)
        big[:, t : t + rows, left : left + cols] = x[:, :rows, :cols]
        ph = big.reshape(c, hp, sh, wp, sw).transpose(0, 2, 4, 1, 3)  # (C, sh, sw, H', W')
        ph = ph[:, : self.phases[0], : self.phases[1]]
        return np.ascontiguousarray(ph.reshape(self.groups, self.group_in_channels, hp, wp))

    def phase_weights(self, w: I64) -> I64:
        """(M, C/g, kh, kw) -> (groups, M/g, C/g * sh * sw, kh', kw')."""
        m = self.out_channels
        cg = self.in_shape[0] // self.groups
        if w.shape != (m, cg, *self.kernel):
            raise SnniError(f"conv weight shape {w.shape} != {(m, cg, *self.kernel)}")
        sh, sw = self.stride
        kh2, kw2 = self.phase_kernel
        big = np.zeros((m, cg, kh2 * sh, kw2 * sw), dtype=np.int64)
        big[:, :, : self.kernel[0], : self.kernel[1]] = w
        ph = big.reshape(m, cg, kh2, sh, kw2, sw).transpose(0, 1, 3, 5, 2, 4)
        ph = ph[:, :, : self.phases[0], : self.phases[1]]
        return np.ascontiguousarray(
            ph.reshape(self.groups, m // self.groups, self.group_in_channels, kh2, kw2)
        )


class HeLayout:
    """Public layout of one linear layer: ciphertexts in/out and who sums with what."""

    def __init__(
        self,
        *,
        n: int,
        n_in: int,
        n_out: int,
        n_kernels: int,
        terms: list[list[tuple[int, int]]],
        out_index: I64,
    ) -> None:
        self.n = n
        self.n_in = n_in
        self.n_out = n_out
        self.n_kernels = n_kernels
        self.terms = terms
        self.out_index = out_index

    @property
    def n_mul(self) -> int:
        return sum(len(t) for t in self.terms)


class ConvLayer:
    """A conv as an HE layout (same packing for every group)."""

    def __init__(
        self,
        spec: ConvSpec,
        n: int,
        tiling: dict[str, int] | None = None,
        prices: TilingPrices = EDGE_TIME,
    ) -> None:
        """``tiling`` (cp, th, tw, no) pins the packing (plans carry it); else it is chosen
        at ``prices``.

        A depthwise conv (groups = C = M) is packed as one block-diagonal dense conv
        (tiling ``dw`` = 1; packing.choose_depthwise), several channels per
        polynomial; a pinned tiling without ``dw`` keeps the older one-group-per-
        polynomial packing, so plans compiled before read the same."""
        self.spec = spec
        c = spec.in_shape[0]
        self.depthwise = (
            spec.groups > 1
            and spec.groups == c == spec.out_channels
            and (tiling is None or int(tiling.get("dw", 0)) == 1)
        )
        self.dense = replace(spec, groups=1) if self.depthwise else spec
        hp, wp = spec.phase_size
        kh, kw = spec.phase_kernel
        geometry = {
            "channels": self.dense.group_in_channels,
            "height": hp,
            "width": wp,
            "out_channels": spec.out_channels // self.dense.groups,
            "kh": kh,
            "kw": kw,
            "n": n,
        }
        if tiling is None and self.depthwise:
            phases = spec.phases[0] * spec.phases[1]
            self.packing = choose_depthwise(
                channels=c, phases=phases, height=hp, width=wp, kh=kh, kw=kw, n=n, prices=prices
            )
        elif tiling is None:
            self.packing = ConvPacking.choose(**geometry, prices=prices)
        else:
            try:
                self.packing = ConvPacking(
                    **geometry,
                    cp=int(tiling["cp"]),
                    th=int(tiling["th"]),
                    tw=int(tiling["tw"]),
                    no=int(tiling["no"]),
                )
            except (KeyError, TypeError, ValueError) as exc:
                raise SnniError(f"bad conv tiling {tiling}: {exc}") from exc
        p = self.packing
        g = self.dense.groups
        terms: list[list[tuple[int, int]]] = []
        if self.depthwise:
            pairs = depthwise_pairs(p, spec.phases[0] * spec.phases[1])
            for ob in range(p.n_ob):
                for tile in range(p.n_tiles):
                    terms.append([(cb * p.n_tiles + tile, ob * p.n_cb + cb) for cb in pairs[ob]])
        else:
            for gi in range(g):
                for pair in p.terms():
                    terms.append([(gi * p.n_in + i, gi * p.n_kernels + k) for i, k in pair])
        base = p.output_index()
        out_index = (np.arange(g, dtype=np.int64)[:, None] * (p.n_out * n) + base[None, :]).reshape(
            -1
        )
        self.layout = HeLayout(
            n=n,
            n_in=g * p.n_in,
            n_out=g * p.n_out,
            n_kernels=g * p.n_kernels,
            terms=terms,
            out_index=out_index,
        )

    def _dense_weights(self, w: I64) -> I64:
        """Phase weights of the conv as the packing sees it (block-diagonal if depthwise)."""
        if not self.depthwise:
            return self.spec.phase_weights(w)
        c = self.spec.out_channels
        if w.shape != (c, 1, *self.spec.kernel):
            raise SnniError(f"depthwise weight shape {w.shape} != {(c, 1, *self.spec.kernel)}")
        full = np.zeros((c, c, *self.spec.kernel), dtype=np.int64)
        full[np.arange(c), np.arange(c)] = w[:, 0]
        return self.dense.phase_weights(full)

    @property
    def tiling(self) -> dict[str, int]:
        p = self.packing
        out = {"cp": p.cp, "th": p.th, "tw": p.tw, "no": p.no}
        return {**out, "dw": 1} if self.depthwise else out

    def pack(self, x: U64) -> U64:
        ph = self.dense.phase_input(x)
        return np.concatenate([self.packing.pack_input(ph[g]) for g in range(self.dense.groups)])

    def kernel_polys(self, w: I64) -> I64:
        """Signed kernel polynomials (n_kernels, n), server side only."""
        pw = self._dense_weights(w)
        polys = [self.packing.kernels(pw[g]) for g in range(self.dense.groups)]
        return np.concatenate(polys).reshape(self.layout.n_kernels, self.layout.n)

    def kernel_source(self, w: I64) -> Callable[[int], I64]:
        """Kernel polynomial k on demand (one output block at a time), so that a large
        model never holds all its kernel polynomials at once."""
        return self._source(self._dense_weights(w))

    def _source(self, pw: I64) -> Callable[[int], I64]:
        p = self.packing
        block: dict[tuple[int, int], I64] = {}

        def get(k: int) -> I64:
            g, rem = divmod(k, p.n_kernels)
            ob, cb = divmod(rem, p.n_cb)
            if (g, ob) not in block:
                block.clear()
                block[(g, ob)] = p.kernels(pw[g], ob, ob + 1)
            poly: I64 = block[(g, ob)][cb]
            return poly

        return get

    @property
    def support_size(self) -> int:
        """Coefficients a kernel polynomial may use (public): what a bulk NTT costs."""
        p = self.packing
        return p.no * p.cp * p.kh * p.kw

    def kernel_sparse(self, w: I64) -> SparseKernels:
        """The kernel polynomials as weights on the packing's one support (bulk.py):
        kernel k's row is kernel_source(w)(k) at ``positions``. Server side only."""
        return self._sparse(self._dense_weights(w))

    def kernel_views(self, w: I64) -> tuple[Callable[[int], I64], SparseKernels]:
        """:meth:`kernel_source` and :meth:`kernel_sparse` on one copy of the weights."""
        pw = self._dense_weights(w)
        return self._source(pw), self._sparse(pw)

    def _sparse(self, pw: I64) -> SparseKernels:
        p = self.packing
        block: dict[tuple[int, int], I64] = {}

        def rows(ids: list[int]) -> I64:
            out = np.empty((len(ids), p.no * p.cp * p.kh * p.kw), dtype=np.int64)
            for r, k in enumerate(ids):
                g, rem = divmod(k, p.n_kernels)
                ob, cb = divmod(rem, p.n_cb)
                if (g, ob) not in block:
                    block.clear()
                    block[(g, ob)] = p.kernel_rows(pw[g], ob, ob + 1)
                out[r] = block[(g, ob)][cb]
            return out

        return SparseKernels(positions=p.support(), rows=rows)

    def l1_bound(self, w: I64) -> float:
        """Largest sum of |kernel| over the terms of one output ciphertext."""
        pw = self._dense_weights(w)
        return max(self.packing.l1_bound(pw[g]) for g in range(self.dense.groups))


class MatmulLayer:
    """y = W x on a flat vector (Gemm / MatMul with batch 1)."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        n: int,
        tiling: dict[str, int] | None = None,
        prices: TilingPrices = EDGE_TIME,
    ) -> None:
        if tiling is None:
            self.packing = MatmulPacking.choose(
                in_features=in_features, out_features=out_features, n=n, prices=prices
            )
        else:
            try:
                self.packing = MatmulPacking(
                    in_features=in_features, out_features=out_features, n=n, kc=int(tiling["kc"])
                )
            except (KeyError, TypeError, ValueError) as exc:
                raise SnniError(f"bad matmul tiling {tiling}: {exc}") from exc
        p = self.packing
        self.layout = HeLayout(
            n=n,
            n_in=p.n_in,
            n_out=p.n_out,
            n_kernels=p.n_kernels,
            terms=list(p.terms()),
            out_index=p.output_index(),
        )

    @property
    def tiling(self) -> dict[str, int]:
        return {"kc": self.packing.kc}

    def pack(self, x: U64) -> U64:
        return self.packing.pack_input(x.reshape(-1))

    def kernel_polys(self, w: I64) -> I64:
        if w.shape != (self.packing.out_features, self.packing.in_features):
            raise SnniError(f"matmul weight shape {w.shape} is wrong")
        return self.packing.kernels_all(w)

    def kernel_source(self, w: I64) -> Callable[[int], I64]:
        polys = self.kernel_polys(w)
        return lambda k: polys[k]

    def l1_bound(self, w: I64) -> float:
        """Each output coefficient sums one row over the chunks; cross terms do not reach it,
        but the noise of a coefficient is bounded by the L1 norm of the whole kernel column
        set it touches: the full block, a safe over-estimate."""
        r = self.packing.rows_per_poly
        rows = np.abs(w).sum(axis=1)
        padded = np.zeros(self.packing.n_ob * r)
        padded[: rows.size] = rows
        return float(padded.reshape(self.packing.n_ob, r).sum(axis=1).max())
