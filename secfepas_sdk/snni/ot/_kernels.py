"""numba kernels of the OT layer's element-wise passes (imported only if numba is there).

Module-level functions, so that numba's on-disk cache serves them. Each does in one
pass what its numpy form (next to its caller) does in several, with the same
results; each caller checks that once against the numpy form and falls back to it.

- :func:`pack`, :func:`unpack` (:mod:`.bits`): value j's low ``width`` bits at bit
  offset j * width, little-endian, the last byte padded with zeros (its padding
  ignored when reading). The numpy forms expand every value to 64 bytes of bits
  first (16 MB per 2^18 values); these run through a 64-bit accumulator.
- :func:`fold` (:mod:`.ggm`): a GGM level's children xor their parents, and the
  side sums (numpy: two XOR passes and a reduction).
- :func:`flip_delta`, :func:`tweak_xor`, :func:`hash_out` (:mod:`.crhash`): the
  TMMO hash's passes around its two AES calls.
- :func:`spread_keys`, :func:`unspread` (:mod:`.words`): the packed 1-of-N OT's
  sender spread and receiver decode, one pass per instance; :func:`leaf_words`
  (:mod:`..nonlinear.millionaire`): the server's packed leaf messages.
The blocks and words are the caller's (secret to their holder); nothing is kept.
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np


@numba.njit(cache=True, nogil=True, inline="always")
def _put(  # pragma: no cover - compiled
    acc: Any, nbits: Any, bits: Any, width: Any, out: Any, pos: Any
) -> Any:
    """Append ``width`` (<= 32) bits to the accumulator, write out its whole bytes;
    at most 7 bits stay waiting. Returns (acc, nbits, pos)."""
    acc |= bits << nbits
    nbits += width
    while nbits >= np.uint64(8):
        out[pos] = np.uint8(acc & np.uint64(0xFF))
        pos += 1
        acc >>= np.uint64(8)
        nbits -= np.uint64(8)
    return acc, nbits, pos


@numba.njit(cache=True, nogil=True, inline="always")
def _take(  # pragma: no cover - compiled
    acc: Any, nbits: Any, width: Any, raw: Any, pos: Any
) -> Any:
    """Read bytes of ``raw`` until ``width`` (<= 32) bits wait, take them. Returns
    (piece, acc, nbits, pos)."""
    while nbits < width:
        acc |= np.uint64(raw[pos]) << nbits
        pos += 1
        nbits += np.uint64(8)
    piece = acc & ((np.uint64(1) << width) - np.uint64(1))
    return piece, acc >> width, nbits - width, pos


@numba.njit(cache=True, nogil=True)
def pack(values: Any, width: Any, out: Any) -> None:  # pragma: no cover - compiled
    """out[:] = the low ``width`` (2..64) bits of each uint64 value, back to back, in
    pieces of at most 32 bits (so each fits beside the <= 7 waiting bits)."""
    w = np.uint64(width)
    lo_w = np.uint64(32) if width > 32 else w
    hi_w = w - lo_w
    lo_mask = (np.uint64(1) << lo_w) - np.uint64(1)
    hi_mask = (np.uint64(1) << hi_w) - np.uint64(1)
    acc = np.uint64(0)
    nbits = np.uint64(0)
    pos = 0
    for j in range(values.shape[0]):
        v = values[j]
        acc, nbits, pos = _put(acc, nbits, v & lo_mask, lo_w, out, pos)
        if hi_w:
            acc, nbits, pos = _put(acc, nbits, (v >> lo_w) & hi_mask, hi_w, out, pos)
    if nbits:
        out[pos] = np.uint8(acc & np.uint64(0xFF))


@numba.njit(cache=True, nogil=True)
def unpack(raw: Any, width: Any, out: Any) -> None:  # pragma: no cover - compiled
    """out[j] = bits j * width .. (j + 1) * width - 1 of ``raw`` (2..64 wide)."""
    w = np.uint64(width)
    lo_w = np.uint64(32) if width > 32 else w
    hi_w = w - lo_w
    acc = np.uint64(0)
    nbits = np.uint64(0)
    pos = 0
    for j in range(out.shape[0]):
        v, acc, nbits, pos = _take(acc, nbits, lo_w, raw, pos)
        if hi_w:
            hi, acc, nbits, pos = _take(acc, nbits, hi_w, raw, pos)
            v |= hi << lo_w
        out[j] = v


@numba.njit(cache=True, nogil=True)
def fold(src: Any, words: Any, m: Any, t: Any, sums: Any) -> None:  # pragma: no cover - compiled
    """words[b * m t + i] ^= src[i] for the (m t, 2) parents and (2 m t, 2) children,
    and sums[b, j] = XOR over a of the child (b, a t + j), as (2, t, 2) words."""
    half = m * t
    sums[:] = 0
    for b in range(2):
        for a in range(m):
            for j in range(t):
                i = a * t + j
                c0 = words[b * half + i, 0] ^ src[i, 0]
                c1 = words[b * half + i, 1] ^ src[i, 1]
                words[b * half + i, 0] = c0
                words[b * half + i, 1] = c1
                sums[b, j, 0] ^= c0
                sums[b, j, 1] ^= c1


@numba.njit(cache=True, nogil=True)
def flip_delta(x: Any, f: Any, d0: Any, d1: Any, add: Any, out: Any) -> None:  # pragma: no cover
    """out[j] = x[j] xor ((f[j] xor add) & 1) * (d0, d1), for (m, 2) words; no f: f = 0."""
    with_f = f.shape[0] > 0
    for j in range(x.shape[0]):
        b = np.uint64(add)
        if with_f:
            b ^= np.uint64(f[j])
        b &= np.uint64(1)
        mask = np.uint64(0) - b
        out[j, 0] = x[j, 0] ^ (d0 & mask)
        out[j, 1] = x[j, 1] ^ (d1 & mask)


@numba.njit(cache=True, nogil=True)
def tweak_xor(a: Any, start: Any, domain: Any, b: Any) -> None:  # pragma: no cover - compiled
    """b[j] = a[j] xor (start + j, domain), for (m, 2) words."""
    s = np.uint64(start)
    dom = np.uint64(domain)
    for j in range(a.shape[0]):
        b[j, 0] = a[j, 0] ^ (s + np.uint64(j))
        b[j, 1] = a[j, 1] ^ dom


@numba.njit(cache=True, nogil=True)
def hash_out(a: Any, b: Any, mask: Any, out: Any) -> None:  # pragma: no cover - compiled
    """out[j] = (a[j, 0] xor b[j, 0]) & mask: the hash's low word, cut to its width."""
    m = np.uint64(mask)
    for j in range(a.shape[0]):
        out[j] = (a[j, 0] ^ b[j, 0]) & m


@numba.njit(cache=True, nogil=True)
def spread_keys(
    words: Any, k0: Any, k1: Any, lut: Any, log_n: Any, out: Any
) -> None:  # pragma: no cover - compiled
    """out[i] = words[i] xor, over t and b, the slots of key K_t^b spread to their
    messages' places: lut[t, b, j][byte j of the key] (:func:`.words.words_payload`)."""
    nbytes = lut.shape[2]
    for i in range(words.shape[0]):
        m = words[i]
        for t in range(log_n):
            a = k0[i * log_n + t]
            b = k1[i * log_n + t]
            for j in range(nbytes):
                sh = np.uint64(8 * j)
                m ^= lut[t, 0, j, (a >> sh) & np.uint64(0xFF)]
                m ^= lut[t, 1, j, (b >> sh) & np.uint64(0xFF)]
        out[i] = m


@numba.njit(cache=True, nogil=True)
def unspread(
    words: Any, key: Any, choices: Any, shifts: Any, log_n: Any, mask: Any, out: Any
) -> None:  # pragma: no cover - compiled
    """out[i] = (words[i] >> shifts[0, c] xor the chosen keys' slots key[i, t] >>
    shifts[t + 1, c]) & mask, c = choices[i] (< 2^log_n, checked by the caller):
    :func:`.words.words_decode` in one pass."""
    m = np.uint64(mask)
    for i in range(words.shape[0]):
        c = choices[i]
        o = words[i] >> shifts[0, c]
        for t in range(log_n):
            o ^= key[i * log_n + t] >> shifts[t + 1, c]
        out[i] = o & m


@numba.njit(cache=True, nogil=True)
def leaf_words(
    digits: Any, table: Any, ones: Any, ones2: Any, r_gt: Any, r_eq: Any, out: Any
) -> None:  # pragma: no cover - compiled
    """out[i] = table[digits[i]] xor r_gt[i] * ones xor r_eq[i] * ones2: the server's
    packed leaf messages (:func:`..nonlinear.millionaire._leaf_words`; digits < the
    table's size, which the caller's digit masks guarantee)."""
    for i in range(digits.shape[0]):
        w = table[digits[i]]
        w ^= np.uint64(r_gt[i]) * ones
        w ^= np.uint64(r_eq[i]) * ones2
        out[i] = w
