"""Max-pooling's public window geometry (which input positions each output reads) and
its tree of pairwise maxima over shares.

The geometry is a function of shapes only (public to both parties); :func:`pool_1d`
moves each party's own shares and leaves every comparison to its ReLU callable.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray

from secfepas_sdk.errors import SnniError
from secfepas_sdk.snni.ring import Ring

U64 = NDArray[np.uint64]


def pool_output_hw(
    hw: tuple[int, int],
    kernel: tuple[int, int],
    stride: tuple[int, int],
    pads: tuple[int, int, int, int],
) -> tuple[int, int]:
    h, w = hw
    kh, kw = kernel
    sh, sw = stride
    top, left, bottom, right = pads
    if min(kh, kw, sh, sw) < 1 or min(pads) < 0:
        raise SnniError(f"bad pooling geometry kernel={kernel} stride={stride} pads={pads}")
    if max(top, bottom) >= kh or max(left, right) >= kw:
        raise SnniError("pooling padding must be smaller than the kernel")
    oh = (h + top + bottom - kh) // sh + 1
    ow = (w + left + right - kw) // sw + 1
    if oh < 1 or ow < 1:
        raise SnniError(f"pooling window {kernel} larger than the padded input {hw}")
    return oh, ow


def window_indices(
    hw: tuple[int, int],
    kernel: tuple[int, int],
    stride: tuple[int, int],
    pads: tuple[int, int, int, int],
) -> NDArray[np.intp]:
    """(oh*ow, kh*kw) flat input indices. Padded taps (which count as -inf) are
    replaced by a valid tap of the same window: max(v, v) = v, so duplicates
    leave the maximum unchanged."""
    h, w = hw
    kh, kw = kernel
    sh, sw = stride
    top, left, _, _ = pads
    oh, ow = pool_output_hw(hw, kernel, stride, pads)
    rows = np.arange(oh)[:, None] * sh - top + np.arange(kh)[None, :]  # (oh, kh)
    cols = np.arange(ow)[:, None] * sw - left + np.arange(kw)[None, :]  # (ow, kw)
    rr = rows[:, None, :, None]
    cc = cols[None, :, None, :]
    valid = (rr >= 0) & (rr < h) & (cc >= 0) & (cc < w)  # (oh, ow, kh, kw)
    idx = np.clip(rr, 0, h - 1) * w + np.clip(cc, 0, w - 1)
    idx = np.broadcast_to(idx, valid.shape).reshape(oh * ow, kh * kw)
    valid = valid.reshape(oh * ow, kh * kw)
    if not valid.any(axis=1).all():
        raise SnniError("a pooling window lies entirely in the padding")
    first = idx[np.arange(idx.shape[0]), valid.argmax(axis=1)]
    return np.where(valid, idx, first[:, None]).astype(np.intp)


def pool_1d(
    xs: U64,
    kernel: tuple[int, int],
    stride: tuple[int, int],
    pads: tuple[int, int, int, int],
    ring: Ring,
    relu: Callable[[U64], U64],
) -> U64:
    """Max over windows of one axis of this party's NCHW share: a log-depth tree with
    each level's pairs packed into a single ``relu`` call (max(a, b) = b + ReLU(a - b))."""
    n, c, h, w = xs.shape
    oh, ow = pool_output_hw((h, w), kernel, stride, pads)
    idx = window_indices((h, w), kernel, stride, pads)  # (oh*ow, k)
    cols = xs.reshape(n * c, h * w)[:, idx]  # (nc, oh*ow, k)
    level = [np.ascontiguousarray(cols[:, :, j]).reshape(-1) for j in range(idx.shape[1])]
    while len(level) > 1:
        pairs = len(level) // 2
        a = np.concatenate(level[0 : 2 * pairs : 2])
        b = np.concatenate(level[1 : 2 * pairs : 2])
        best = ring.add(b, relu(ring.sub(a, b)))
        merged = np.split(best, pairs)
        if len(level) % 2:
            merged.append(level[-1])
        level = merged
    out: U64 = level[0].reshape(n, c, oh, ow)
    return out
