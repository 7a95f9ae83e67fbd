"""Fixed-key AES correlation-robust hash (Guo, Katz, Wang, Yu; S&P 2020).

H(i, x) = pi(pi(x) xor i) xor pi(x), the "TMMO" construction, where pi is AES-128
under a fixed public key and i is a 128-bit tweak (the OT index plus a domain
tag). Guo et al. prove TMMO tweakable circular correlation robust in the ideal
permutation model, which is what IKNP with a global offset needs. Only public
data goes into the key; the secrecy is all in the hashed blocks.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from numpy.typing import NDArray

from secfepas_sdk.errors import SnniError
from secfepas_sdk.snni.kernels import checked_kernel
from secfepas_sdk.snni.ot.aesblocks import Blocks, encrypt_into

# A fixed public "nothing up my sleeve" key: the first 16 bytes of SHA-256("secfepas crhash").
FIXED_KEY = bytes.fromhex("99cfadfb43294172dcc4084340b747dc")

# ECB is right here: pi is AES used as a fixed public permutation, block by block.
_ECB = Cipher(algorithms.AES(FIXED_KEY), modes.ECB())  # noqa: S305


def _permute(blocks: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """pi applied to each 16-byte row of a contiguous (n, 16) array."""
    n = blocks.shape[0]
    out = np.empty(n * 16 + 15, dtype=np.uint8)
    enc = _ECB.encryptor()
    enc.update_into(np.ascontiguousarray(blocks).data, out.data)
    return out[: n * 16].reshape(n, 16)


def tweaks(start: int, count: int, domain: int) -> NDArray[np.uint8]:
    """Tweak blocks (start + k, domain) for k in range(count), as (count, 16) bytes."""
    words = np.empty((count, 2), dtype=np.uint64)
    words[:, 0] = np.arange(start, start + count, dtype=np.uint64)
    words[:, 1] = np.uint64(domain)
    return words.view(np.uint8).reshape(count, 16)


def crhash(blocks: NDArray[np.uint8], tweak: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """TMMO hash of each (n, 16) block under the matching (n, 16) tweak."""
    if blocks.shape != tweak.shape or blocks.ndim != 2 or blocks.shape[1] != 16:
        raise SnniError(f"crhash needs two (n, 16) arrays, got {blocks.shape} and {tweak.shape}")
    first = _permute(blocks)
    second = _permute(first ^ tweak)
    second ^= first
    return second


def crhash_u64(
    blocks: NDArray[np.uint8], tweak: NDArray[np.uint8], width: int
) -> NDArray[np.uint64]:
    """The low ``width`` (<= 64) bits of each hash as uint64."""
    if not 1 <= width <= 64:
        raise SnniError(f"hash width must be in 1..64, got {width}")
    out = crhash(blocks, tweak)[:, :8].copy().view(np.uint64).reshape(-1)
    if width < 64:
        out &= np.uint64((1 << width) - 1)
    return out


_CHUNK = 1 << 14  # rows per pass: the four 256 kB scratch buffers stay in cache
_LOCAL = threading.local()


_Scratch = tuple[Blocks, Blocks, Blocks, Blocks, NDArray[np.uint64]]


def _scratch() -> _Scratch:
    """Per thread: x (the flipped inputs), a = pi(x), b = a xor tweak, c = pi(b), and
    the counter column (c apart from b: ``update_into`` may not write in place)."""
    bufs: _Scratch | None = getattr(_LOCAL, "bufs", None)
    if bufs is None:
        counter = np.empty(_CHUNK, dtype=np.uint64)
        blocks = Blocks(_CHUNK), Blocks(_CHUNK), Blocks(_CHUNK), Blocks(_CHUNK)
        bufs = _LOCAL.bufs = (*blocks, counter)
    return bufs


def hash_into(
    rows: NDArray[np.uint8],
    start: int,
    domain: int,
    width: int,
    out: NDArray[np.uint64],
    *,
    delta: NDArray[np.uint8] | None = None,
    flip: NDArray[np.uint8] | None = None,
    out_delta: NDArray[np.uint64] | None = None,
) -> None:
    """out[j] = the low ``width`` bits of H((start + j, domain), x_j), with
    x_j = rows[j] xor flip[j] * delta (flip: 0/1 per row, or none), and, when
    ``out_delta`` is given, out_delta[j] = the same of x_j xor delta (an OT
    sender's two keys). Same values as :func:`crhash_u64` with :func:`tweaks`, in
    cache-sized passes over reused buffers: 2 AES calls and 2 numba passes (numpy: 4) per
    hash. ``rows`` hold the caller's OT blocks (secret); nothing is kept."""
    n = rows.shape[0]
    if rows.ndim != 2 or rows.shape[1] != 16 or not rows.flags.c_contiguous:
        raise SnniError("hash_into needs a contiguous (n, 16) block array")
    if not 1 <= width <= 64:
        raise SnniError(f"hash width must be in 1..64, got {width}")
    if out.shape != (n,) or (out_delta is not None and out_delta.shape != (n,)):
        raise SnniError("hash_into outputs must have one word per row")
    if (flip is not None or out_delta is not None) and (delta is None or delta.shape != (1, 16)):
        raise SnniError("hash_into needs delta as (1, 16) with flip or out_delta")
    if flip is not None and flip.shape != (n,):
        raise SnniError("hash_into flip bits must have one per row")
    _hash_chunks(rows, start, domain, width, out, delta, flip, out_delta, _hash_kernels())


def _hash_chunks(
    rows: NDArray[np.uint8],
    start: int,
    domain: int,
    width: int,
    out: NDArray[np.uint64],
    delta: NDArray[np.uint8] | None,
    flip: NDArray[np.uint8] | None,
    out_delta: NDArray[np.uint64] | None,
    kernels: tuple[Any, Any, Any] | None,
) -> None:
    """:func:`hash_into`'s passes, with the numba kernels (one pass each) or numpy."""
    n = rows.shape[0]
    x_buf, a_buf, b_buf, c_buf, counter = _scratch()
    mask = np.uint64((1 << width) - 1) if width < 64 else None
    dom = np.uint64(domain)
    # Whole columns against scalars: numpy broadcasting over a 2-word row is 5x slower.
    d_words = () if delta is None else tuple(np.uint64(w) for w in delta.view(np.uint64)[0])
    for lo in range(0, n, _CHUNK):
        m = min(_CHUNK, n - lo)
        x64 = rows[lo : lo + m].view(np.uint64)
        xs = x_buf.rows[:m].view(np.uint64)
        a64, b64 = a_buf.rows[:m].view(np.uint64), b_buf.rows[:m].view(np.uint64)
        c64 = c_buf.rows[:m].view(np.uint64)
        if kernels is not None:
            flip_delta, tweak_xor, hash_out = kernels
            f = _NO_FLIP if flip is None else flip[lo : lo + m]
            cut = np.uint64(0xFFFFFFFFFFFFFFFF) if mask is None else mask
            for turn in range(1 if out_delta is None else 2):
                src = x64
                if flip is not None or turn == 1:  # x xor (flip xor turn) delta
                    flip_delta(x64, f, d_words[0], d_words[1], np.uint8(turn), xs)
                    src = xs
                encrypt_into(FIXED_KEY, src.view(np.uint8), a_buf.flat)  # pi(x)
                tweak_xor(a64, np.uint64(start + lo), dom, b64)
                encrypt_into(FIXED_KEY, b_buf.rows[:m], c_buf.flat)  # pi(pi(x) xor tweak)
                dest = (out if turn == 0 else out_delta)[lo : lo + m]  # type: ignore[index]
                hash_out(a64, c64, cut, dest)
            continue
        if flip is not None:
            f = flip[lo : lo + m]
            for c in (0, 1):
                np.multiply(f, d_words[c], out=xs[:, c], casting="unsafe")
                xs[:, c] ^= x64[:, c]
            x64 = xs
        np.add(_RAMP[:m], np.uint64(start + lo), out=counter[:m])
        for turn in range(1 if out_delta is None else 2):
            if turn == 1:
                for c in (0, 1):
                    np.bitwise_xor(x64[:, c], d_words[c], out=xs[:, c])
                x64 = xs
            encrypt_into(FIXED_KEY, x64.view(np.uint8), a_buf.flat)  # pi(x)
            np.bitwise_xor(a64[:, 0], counter[:m], out=b64[:, 0])
            np.bitwise_xor(a64[:, 1], dom, out=b64[:, 1])
            encrypt_into(FIXED_KEY, b_buf.rows[:m], c_buf.flat)  # pi(pi(x) xor tweak)
            dest = (out if turn == 0 else out_delta)[lo : lo + m]  # type: ignore[index]
            np.bitwise_xor(c64[:, 0], a64[:, 0], out=dest)
            if mask is not None:
                dest &= mask


def warm_up() -> None:
    """Check (and load or compile) the hash's numba passes now, not in the first layer."""
    _hash_kernels()


_NO_FLIP = np.zeros(0, dtype=np.uint8)


@checked_kernel
def _hash_kernels() -> tuple[Any, Any, Any] | None:
    """The numba passes if they give the numpy passes' hashes (checked once), else None."""
    from secfepas_sdk.snni.ot import _kernels as k

    kernels = (k.flip_delta, k.tweak_xor, k.hash_out)
    rng = np.random.default_rng(17)
    rows = rng.integers(0, 256, (50, 16), dtype=np.uint8)
    delta = rng.integers(0, 256, (1, 16), dtype=np.uint8)
    flip = rng.integers(0, 2, 50).astype(np.uint8)
    ok = True
    for f, width in ((None, 64), (flip, 5), (None, 13)):
        got = [np.empty(50, np.uint64) for _ in range(4)]
        for i, use in ((0, kernels), (2, None)):
            _hash_chunks(rows, 2**40 + 3, 2**33, width, got[i], delta, f, got[i + 1], use)
        ok = ok and np.array_equal(got[0], got[2]) and np.array_equal(got[1], got[3])
    return kernels if ok else None


_RAMP = np.arange(_CHUNK, dtype=np.uint64)
_RAMP.setflags(write=False)
