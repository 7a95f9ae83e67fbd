"""Fixed-key AES-128-ECB over numpy block buffers, and the buffers it writes into.

Why: ``cryptography`` reaches 5-8 GB/s here when ``update_into`` reads and writes
numpy memory that sits in cache, and 2 GB/s on arrays of tens of MB; a fresh
encryptor costs about 7 us. So the hot paths (GGM levels, the TMMO hash) keep one
encryptor per key and thread (an ECB context holds no state between whole blocks,
and OpenSSL contexts must not be shared by threads), work in chunks that fit the
cache, and write straight into preallocated arrays.

``update_into`` wants 15 bytes of room after the output; OpenSSL writes only the
whole blocks, so those bytes may belong to a neighbour not written yet, or to the
16 bytes of slack that :func:`blocks` leaves after every buffer.
Only public keys go in here; the blocks themselves may be secret (the callers
say whose).
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from numpy.typing import NDArray

from secfepas_sdk.errors import SnniError

U8 = NDArray[np.uint8]

_LOCAL = threading.local()
_HUGE = 1 << 21  # 2 MiB: numpy asks Linux for transparent huge pages on large arrays
_ALIGN_FROM = 1 << 22  # arrays at least this large start on a huge-page boundary


def _encryptor(key: bytes) -> Any:
    cache: dict[bytes, Any] | None = getattr(_LOCAL, "ecb", None)
    if cache is None:
        cache = _LOCAL.ecb = {}
    enc = cache.get(key)
    if enc is None:
        # ECB is right here: AES under a public key is a fixed permutation, block by block.
        enc = cache[key] = Cipher(algorithms.AES(key), modes.ECB()).encryptor()  # noqa: S305
    return enc


class Blocks:
    """An uninitialised buffer of ``n`` 16-byte blocks: ``rows`` is the (n, 16) array
    and ``flat`` the same bytes plus 16 of slack, so that :meth:`out` can hand
    ``update_into`` the 15 bytes of room it wants after any run of rows. Large
    buffers start on a 2 MiB boundary: random reads into them (the LPN table) then
    miss the TLB far less often (numpy asks Linux for huge pages)."""

    __slots__ = ("flat", "rows")

    def __init__(self, n: int) -> None:
        if n < 0:
            raise SnniError("negative block count")
        nbytes = 16 * n + 16
        if nbytes < _ALIGN_FROM:
            self.flat: U8 = np.empty(nbytes, dtype=np.uint8)
        else:
            raw = np.empty(nbytes + _HUGE, dtype=np.uint8)
            off = (-raw.ctypes.data) % _HUGE
            self.flat = raw[off : off + nbytes]
        self.rows: U8 = self.flat[: 16 * n].reshape(n, 16)

    def out(self, lo: int, hi: int) -> U8:
        """Rows lo .. hi - 1 as an output for :func:`encrypt_into` (with the room after)."""
        return self.flat[16 * lo : 16 * hi + 15]


def blocks(rows: int) -> U8:
    """An uninitialised (rows, 16) block array (see :class:`Blocks`)."""
    return Blocks(rows).rows


def encrypt_into(key: bytes, src: U8, out: U8) -> None:
    """out[:16m] = AES_key(src) for m C-contiguous 16-byte rows in ``src``; ``out`` is a
    flat uint8 array of at least 16m + 15 bytes (:meth:`Blocks.out`), and may start
    where ``src`` does or before it (in place).

    cryptography 51 refuses overlapping buffers in ``update_into``, so an overlapping
    call goes through a per-thread scratch in cache-sized steps (hot paths avoid it:
    they write into a buffer of their own)."""
    n = src.nbytes
    if out.ndim != 1 or out.size < n + 15 or n % 16 or not src.flags.c_contiguous:
        raise SnniError("AES blocks need contiguous rows and 15 bytes of room after the output")
    data = src.reshape(-1).view(np.uint8)
    enc = _encryptor(key)
    s0, o0 = data.ctypes.data, out.ctypes.data
    if not (s0 < o0 + out.size and o0 < s0 + n):
        enc.update_into(data.data, out.data)
        return
    if o0 > s0:  # a forward step would overwrite rows not read yet
        raise SnniError("an in-place AES output may not start after its input")
    tmp = _step_buffer()
    for lo in range(0, n, _STEP):
        hi = min(n, lo + _STEP)
        enc.update_into(data[lo:hi].data, tmp[: hi - lo + 15].data)
        out[lo:hi] = tmp[: hi - lo]


_STEP = 1 << 16  # bytes per step of an in-place call: stays in L2


def _step_buffer() -> U8:
    buf: U8 | None = getattr(_LOCAL, "step", None)
    if buf is None:
        buf = _LOCAL.step = np.empty(_STEP + 16, dtype=np.uint8)
    return buf
