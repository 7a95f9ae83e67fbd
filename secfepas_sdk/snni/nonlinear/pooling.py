"""Public window geometry for max-pooling: which input positions each output reads.

Only shapes go in here (public to both parties), never shares.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from secfepas_sdk.errors import SnniError


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
