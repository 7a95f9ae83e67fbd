"""The direct path's c0 products at the reply's output coefficients only.

Who holds what: the edge holds the camera's input ciphertexts (c0_i, c1_i) and the
kernels. A trimmed reply (reply.py) carries all of c1 but c0 only at the output
coefficients S, and the switch to q0 is coefficient-wise in coefficient form, so the
c0 of sum_i ct_i K_i matters at S alone: its other coefficients never leave the edge
and never reach a sent coefficient. c1 stays a whole product: decryption mixes every
coefficient of c1 with s.

At an output coefficient x the product is sum_i sum_j w_ij * sign * c0_i[(x - p_j) mod N]
over the support positions p_j (sign -1 where x - p_j wraps: X^N = -1; read from the
limbs extended to (-c0, c0), so the sign is in the index). Gathering
those input coefficients once per call, for every (p_j, x), makes c0 one small GEMM per
prime and limb: (members, inputs * support) x (inputs * support, |S|), against the
full product's (members * support, inputs) x (inputs, N) and its shifts. For a conv
that is the plaintext conv on the tile's outputs instead of its whole polynomial:
|S| / N of the work (ResNet50's 14x14 layers: 196 of 8,192 coefficients per member).
The values at S are the same integers, so the replies are the same bytes.

Exactness as for the full product: every sum of one member's terms is below 2^53 in
magnitude (the L1 check of direct.DirectProducts), so float64 sums are exact in any
order; the limbs are then recombined mod q.
"""

from __future__ import annotations

import threading

import numpy as np
from numpy.typing import NDArray

from secfepas_sdk.errors import SnniError
from secfepas_sdk.snni.he.limbs import recombine

__all__ = ["OutputGather", "worth_it"]

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]
U64 = NDArray[np.uint64]

_GATHER_BYTES = 16 << 20  # one gathered block of inputs x support x outputs, float64
_SCRATCH = threading.local()  # the gather's buffers, reused (at most about 16 + 2 N x inputs x 8 B)


def worth_it(outputs: int, n: int) -> bool:
    """Gather c0 at ``outputs`` coefficients instead of computing it whole? (public: the
    layout's output count). The gather reads inputs x support x |S| values where the
    full product writes members x support x N: below N / 2 the GEMM it feeds is smaller
    and the shifts are gone."""
    return 0 < outputs <= n // 2


class OutputGather:
    """c0 of one layer's direct products at the sorted output coefficients ``outputs``."""

    def __init__(self, positions: I64, outputs: I64, n: int) -> None:
        pos = np.asarray(positions, dtype=np.int64)
        at = np.asarray(outputs, dtype=np.int64)
        if at.ndim != 1 or not at.size or int(at.min()) < 0 or int(at.max()) >= n:
            raise SnniError("output coefficients outside the polynomial")
        if pos.ndim != 1 or not pos.size or int(pos.min()) < 0 or int(pos.max()) >= n:
            raise SnniError("kernel support outside the polynomial")
        # into the inputs extended to (-x, x), 2N long: X^N = -1 folded into the index
        self._index = (at[None, :] - pos[:, None]) + n  # (support, |S|), in [1, 2N)
        self.outputs = at
        self._support = pos.size

    def product(self, wt: F64, xs: F64, q: int, bits: int) -> U64:
        """(members, |S|) c0 coefficients mod q of the group's products: ``wt`` is the
        (members * support, inputs) weight matrix of direct.DirectProducts, ``xs`` the
        inputs' c0 limbs (inputs, limbs, N) for prime q."""
        support = self._support
        inputs, limbs, _n = xs.shape
        if wt.shape[0] % support or wt.shape[1] != inputs:
            raise SnniError("direct weights do not match the gather")
        members = wt.shape[0] // support
        w2 = wt.reshape(members, support, inputs).transpose(0, 2, 1).reshape(members, -1)
        count = self.outputs.size
        acc = np.empty((members, limbs, count), dtype=np.float64)
        step = min(count, max(1, _GATHER_BYTES // (8 * inputs * support)))
        n = xs.shape[2]
        extended = self._buffer("extended", inputs * 2 * n).reshape(inputs, 2 * n)
        gathered = self._buffer("gathered", inputs * support * step)
        for t in range(limbs):
            np.negative(xs[:, t, :], out=extended[:, :n])  # (-x, x): 2N long per input
            extended[:, n:] = xs[:, t, :]
            for lo in range(0, count, step):
                idx = self._index[:, lo : lo + step]
                g = gathered[: inputs * support * idx.shape[1]].reshape(inputs, support, -1)
                np.take(extended, idx, axis=1, out=g)
                np.matmul(w2, g.reshape(inputs * support, -1), out=acc[:, t, lo : lo + step])
        return recombine(acc, q, bits)

    @staticmethod
    def _buffer(name: str, size: int) -> F64:
        """Scratch kept per thread across calls and layers: fresh pages for tens of MB
        on every layer call cost more than the gather (about 0.1 s per call)."""
        buffers: dict[str, F64] = _SCRATCH.__dict__.setdefault("buffers", {})
        have = buffers.get(name)
        if have is None or have.size < size:
            have = buffers[name] = np.empty(size, dtype=np.float64)
        return have[:size]
