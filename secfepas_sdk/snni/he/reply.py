"""The reply encoding: send only what the camera decrypts, and fewer bits of it.

Who holds what: the edge holds a switched reply (c0, c1) mod q0; the camera holds
the secret key s and needs m = round(t/q0 (c0 + c1 s)) only at the reply's
output coefficients S (the layout's ``out_index``: public). Decryption is
coefficient-wise once c1 s is formed, so the camera needs every coefficient of
c1 and only c0[S]. Cheetah does the same (Huang et al., USENIX Security 2022).

So a reply travels as c1 >> d1, then c0[S] >> d0, bit-packed at L - d1 and L - d0
bits (q0 < 2^L). The camera puts each value back at the middle of its 2^d
interval (off by at most 2^(d-1)), zeros c0 outside S, and lets SEAL decrypt:
the output coefficients are right, the others are garbage it never reads.
d0 and d1 come from the noise room the flood left (flooding.drop_bits), so
decryption stays correct.

Privacy: dropping coefficients and bits is post-processing by the edge, so it
cannot hurt the edge. It helps: c0 outside S never leaves the edge, so the
statistical distance the flooding leaves is counted over S only (snni.privacy).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from secfepas_sdk.errors import InvalidValueError, PeerDataError
from secfepas_sdk.snni.he import sealio
from secfepas_sdk.snni.he.layers import HeLayout

__all__ = ["ReplyCodec", "ReplyFormat", "output_positions", "pack_bits", "unpack_bits"]

U64 = NDArray[np.uint64]
I64 = NDArray[np.int64]


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplyFormat:
    """Low-order bits dropped from c0 and c1 (both parties derive it from the plan)."""

    c0_drop: int
    c1_drop: int

    def __post_init__(self) -> None:
        if not (0 <= self.c0_drop < 64 and 0 <= self.c1_drop < 64):
            raise InvalidValueError("dropped bits must be in 0..63")


def output_positions(layout: HeLayout) -> list[I64]:
    """Per reply k, the sorted coefficients the camera reads (S_k)."""
    flat = np.sort(layout.out_index)
    cts = flat // layout.n
    bounds = np.searchsorted(cts, np.arange(layout.n_out + 1))
    return [flat[bounds[k] : bounds[k + 1]] % layout.n for k in range(layout.n_out)]


class ReplyCodec:
    """One layer's replies on the wire (both parties build the same one)."""

    def __init__(self, layout: HeLayout, modulus: int, fmt: ReplyFormat) -> None:
        self.n = layout.n
        self.modulus = modulus
        self.width = modulus.bit_length()  # L: q0 < 2^L
        if max(fmt.c0_drop, fmt.c1_drop) >= self.width:
            raise InvalidValueError("cannot drop every bit of a coefficient")
        self.fmt = fmt
        self.keep = output_positions(layout)
        self._c1_bits = self.width - fmt.c1_drop
        self._c0_bits = self.width - fmt.c0_drop

    @functools.cached_property
    def coefficients(self) -> I64:
        """Every coefficient some reply carries c0 at, sorted: where the edge needs c0
        at all (direct_outputs.py). Made once per layer, not per call."""
        return np.unique(np.concatenate(self.keep))

    def _c1_bytes(self) -> int:
        return math.ceil(self.n * self._c1_bits / 8)

    def size(self, k: int) -> int:
        """Exact bytes of reply k."""
        return self._c1_bytes() + math.ceil(self.keep[k].size * self._c0_bits / 8)

    @property
    def max_size(self) -> int:
        return max(self.size(k) for k in range(len(self.keep)))

    def encode(self, saved: bytes, k: int) -> bytes:
        """Edge: SEAL's saved switched reply k -> its wire bytes."""
        _parms, ntt, polys = sealio.ciphertext_polys(saved)
        if ntt or polys.shape != (2, 1, self.n):
            raise InvalidValueError("a reply must be a switched 2-part ciphertext")
        c0, c1 = polys[0, 0], polys[1, 0]
        return pack_bits(c1 >> np.uint64(self.fmt.c1_drop), self._c1_bits) + pack_bits(
            c0[self.keep[k]] >> np.uint64(self.fmt.c0_drop), self._c0_bits
        )

    def decode(self, raw: bytes, k: int) -> U64:
        """Camera: reply k's wire bytes (from the peer: checked) -> (c0, c1) mod q0,
        shape (2, n), c0 zero outside the output coefficients."""
        if len(raw) != self.size(k):
            raise PeerDataError(
                f"HE reply {k} has {len(raw)} bytes, the plan implies {self.size(k)}"
            )
        split = self._c1_bytes()
        out = np.zeros((2, self.n), dtype=np.uint64)
        out[1] = self._restore(unpack_bits(raw[:split], self.n, self._c1_bits), self.fmt.c1_drop)
        keep = self.keep[k]
        kept = unpack_bits(raw[split:], keep.size, self._c0_bits)
        out[0, keep] = self._restore(kept, self.fmt.c0_drop)
        return out

    def _restore(self, high: U64, drop: int) -> U64:
        """The middle of each value's 2^drop interval, mod q0; a value no residue mod q0
        could have given is refused."""
        q = self.modulus
        if np.any(high > np.uint64((q - 1) >> drop)):
            raise PeerDataError("HE reply coefficient out of range")
        if drop == 0:
            return high
        mid = (high << np.uint64(drop)) + np.uint64(1 << (drop - 1))
        return np.where(mid >= np.uint64(q), mid - np.uint64(q), mid)


@functools.lru_cache(maxsize=64)
def _layout(count: int, width: int) -> tuple[I64, I64, I64, I64, int]:
    """Where value i of ``count`` sits in a stream of ``width``-bit fields: word w_i,
    offset o_i, the first value of each word, and the values that spill into w_i + 1."""
    pos = np.arange(count, dtype=np.int64) * width
    word, offset = pos >> 6, pos & 63
    starts = np.flatnonzero(np.diff(word, prepend=-1))
    spill = np.flatnonzero(offset + width > 64)
    return word, offset, starts, spill, (count * width + 63) // 64 + 1


def pack_bits(values: U64, width: int) -> bytes:
    """``values`` (each < 2^width) as a little-endian stream of width-bit fields."""
    count = values.size
    if count == 0:
        return b""
    word, offset, starts, spill, words = _layout(count, width)
    v = np.ascontiguousarray(values, dtype=np.uint64)
    out = np.zeros(words, dtype=np.uint64)
    # The fields sharing a word have disjoint bits, so their sum is their OR.
    out[word[starts]] = np.add.reduceat(v << offset.astype(np.uint64), starts)
    out[word[spill] + 1] |= v[spill] >> (64 - offset[spill]).astype(np.uint64)
    return out.astype("<u8").tobytes()[: math.ceil(count * width / 8)]


def unpack_bits(raw: bytes, count: int, width: int) -> U64:
    """The inverse of :func:`pack_bits` (``raw`` must be its exact length)."""
    if count == 0:
        return np.zeros(0, dtype=np.uint64)
    word, offset, _starts, spill, words = _layout(count, width)
    buf = np.zeros(words * 8, dtype=np.uint8)
    buf[: len(raw)] = np.frombuffer(raw, dtype=np.uint8)
    w = buf.view("<u8").astype(np.uint64)
    out = w[word] >> offset.astype(np.uint64)
    out[spill] |= w[word[spill] + 1] << (64 - offset[spill]).astype(np.uint64)
    if width < 64:
        out &= np.uint64((1 << width) - 1)
    return out
