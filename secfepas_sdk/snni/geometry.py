"""Sliding-window geometry of convs and pools, computed in one place.

A :class:`Window` is a kernel, a stride and explicit pads (top, left, bottom,
right). The compiler turns ONNX's ceil mode into extra end padding
(:func:`onnx_pool_axis`), so every party and the simulation see plain floor
geometry afterwards. Everything here is public: shapes only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["Window", "avgpool_divisors", "onnx_pool_axis"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Window:
    kernel: tuple[int, int]
    stride: tuple[int, int]
    pads: tuple[int, int, int, int]  # top, left, bottom, right

    def out_hw(self, h: int, w: int) -> tuple[int, int]:
        """Output rows and columns over an (h, w) input (floor mode)."""
        (kh, kw), (sh, sw), (t, left, b, r) = self.kernel, self.stride, self.pads
        return (h + t + b - kh) // sh + 1, (w + left + r - kw) // sw + 1

    def padded(self, x: NDArray[Any], fill: float = 0) -> NDArray[Any]:
        """(C, H, W) -> (C, H + t + b, W + l + r), ``fill`` in the border."""
        c, h, w = x.shape
        t, left, b, r = self.pads
        out = np.full((c, h + t + b, w + left + r), fill, dtype=x.dtype)
        out[:, t : t + h, left : left + w] = x
        return out

    def windows(self, x: NDArray[Any], fill: float = 0) -> NDArray[Any]:
        """A (C, ho, wo, kh, kw) view of every window of the padded input (no copy
        beyond the padding)."""
        _c, h, w = x.shape
        ho, wo = self.out_hw(h, w)
        win = np.lib.stride_tricks.sliding_window_view(
            self.padded(x, fill), self.kernel, axis=(1, 2)
        )
        return win[:, :: self.stride[0], :: self.stride[1]][:, :ho, :wo]


def onnx_pool_axis(size: int, k: int, s: int, p0: int, p1: int, ceil: bool) -> tuple[int, int]:
    """(output size, extra end padding) of an ONNX pool along one axis: ceil mode
    becomes padding, and a last window that would start in the end padding is dropped."""
    span = size + p0 + p1 - k
    out = (-(-span // s) if ceil else span // s) + 1
    if ceil and (out - 1) * s >= size + p0:
        out -= 1
    extra = max(0, (out - 1) * s + k - (size + p0 + p1))
    return out, extra


def avgpool_divisors(
    window: Window,
    in_hw: tuple[int, int],
    *,
    count_include_pad: bool,
    ceil_pads: tuple[int, int],
) -> NDArray[np.float64]:
    """Per-output-position element counts of an AveragePool (ONNX semantics): with
    ``count_include_pad`` the explicit pads count, never the ceil-mode extra."""
    h, w = in_hw
    ho, wo = window.out_hw(h, w)
    (kh, kw), (sh, sw), (pt, pl, pb, pr) = window.kernel, window.stride, window.pads

    def counts(size: int, k: int, s: int, p0: int, p1: int, extra: int, n: int) -> NDArray[Any]:
        start = np.arange(n) * s - p0
        end = start + k
        lo, hi = (-p0, size + p1 - extra) if count_include_pad else (0, size)
        out: NDArray[Any] = np.clip(np.minimum(end, hi) - np.maximum(start, lo), 0, None)
        return out

    ch = counts(h, kh, sh, pt, pb, ceil_pads[0], ho)
    cw = counts(w, kw, sw, pl, pr, ceil_pads[1], wo)
    div: NDArray[np.float64] = np.maximum(ch[:, None] * cw[None, :], 1).astype(np.float64)
    return div
