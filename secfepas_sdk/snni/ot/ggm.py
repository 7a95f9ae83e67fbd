"""GGM trees for Ferret's single-point COT, expanded level by level across many trees.

The length-doubling PRG is G(x) = (pi_0(x) xor x, pi_1(x) xor x) with pi_b AES-128
under two fixed public keys (the fixed-key "TwoKeyPRP" GGM of Ferret and of Guo,
Katz, Wang, Yu; S&P 2020, secure in the ideal-permutation model). Fixed keys let one
AES-ECB call per key expand one whole level of every tree of a group at once,
written straight into the next level's buffer (:mod:`.aesblocks`).

Layout: a level of m nodes per tree over t trees is an (m, t, 16) array, node-major,
and the children of level (m, t) are the (2m, t) level [pi_0 half; pi_1 half]: child
(b, a) of node a sits at b * m + a. So the leaf reached by branches b_1 .. b_h (b_1
at the root) sits at position sum_i b_i 2^(i-1) of its tree, and each AES half is one
contiguous run. Any fixed leaf order does for Ferret: see :mod:`.ferret`.

Who holds what: the COT sender (holder of Delta) grows full trees from its secret
random roots and publishes, per level, the two masked sums of left (b = 0) and right
(b = 1) children. The COT receiver, who learns one of those sums per level, rebuilds
every leaf except the one at its punctured position alpha (the path it never learns).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray

from secfepas_sdk.errors import SnniError
from secfepas_sdk.snni.kernels import checked_kernel
from secfepas_sdk.snni.ot.aesblocks import Blocks, encrypt_into

U8 = NDArray[np.uint8]
U64 = NDArray[np.uint64]

# Public "nothing up my sleeve" keys: the first 16 bytes of SHA-256("secfepas ggm left"/"right").
LEFT_KEY = bytes.fromhex("1ad8e8138f7c552efd7e67cf89f0f7a1")
RIGHT_KEY = bytes.fromhex("d06af8998c7239a8a4f729dd3110f28b")
_KEYS = (LEFT_KEY, RIGHT_KEY)
MAX_DEPTH = 20


class Scratch:
    """Two level buffers of up to ``rows`` blocks, reused across the groups of an
    iteration (the last level goes into the caller's output instead)."""

    __slots__ = ("bufs",)

    def __init__(self, rows: int) -> None:
        self.bufs = (Blocks(rows), Blocks(rows))

    def level(self, i: int, rows: int) -> U8:
        """A flat output for level i + 1 of ``rows`` blocks (alternating buffers)."""
        buf = self.bufs[i % 2]
        if rows > buf.rows.shape[0]:
            raise SnniError("GGM scratch too small")
        return buf.out(0, rows)


def _outputs(
    out: U8 | None, rows: int, scratch: Scratch | None, depth: int, t: int
) -> tuple[U8, Scratch]:
    """The flat output of the last level, and the scratch for the others."""
    if out is None:
        out = Blocks(rows).out(0, rows)
    elif out.ndim != 1 or out.size < 16 * rows + 15:
        raise SnniError(f"GGM output must be a flat buffer of {rows} blocks and 15 bytes")
    need = (1 << (depth - 1)) * t
    return out, (scratch if scratch is not None else Scratch(need))


def _grow(level: U8, dst: U8, m: int, t: int) -> tuple[U8, U64]:
    """Write the children of ``level`` ((m*t, 16)) into the flat ``dst`` and return
    them as (2*m*t, 16), with the side sums (2, t, 2) uint64: the XOR of all
    b-children of each tree."""
    half = m * t
    encrypt_into(_KEYS[0], level, dst)
    encrypt_into(_KEYS[1], level, dst[16 * half :])
    children = dst[: 32 * half].reshape(2 * half, 16)
    src = level.reshape(-1, 16).view(np.uint64)
    words = children.view(np.uint64)
    kernel = _fold_kernel()
    if kernel is not None:
        sums = np.empty((2, t, 2), dtype=np.uint64)
        kernel(src, words, m, t, sums)
        return children, sums
    return children, _fold_numpy(src, words, m, t)


def _fold_numpy(src: U64, words: U64, m: int, t: int) -> U64:
    """numpy form of the level fold (three passes over the children)."""
    half = m * t
    words[:half] ^= src
    words[half:] ^= src
    sums: U64 = np.bitwise_xor.reduce(words.reshape(2, m, t * 2), axis=1).reshape(2, t, 2)
    return sums


def warm_up() -> None:
    """Check (and load or compile) the numba level fold now, not in the first layer."""
    _fold_kernel()


@checked_kernel
def _fold_kernel() -> Callable[..., None] | None:
    """The numba fold if it matches numpy on a small level (checked once), else None."""
    from secfepas_sdk.snni.ot._kernels import fold

    rng = np.random.default_rng(13)
    m, t = 4, 3
    src = rng.integers(0, 1 << 63, (m * t, 2), dtype=np.uint64)
    kids = rng.integers(0, 1 << 63, (2 * m * t, 2), dtype=np.uint64)
    want_kids = kids.copy()
    want = _fold_numpy(src, want_kids, m, t)
    got = np.empty((2, t, 2), dtype=np.uint64)
    fold(src, kids, m, t, got)
    ok = np.array_equal(got, want) and np.array_equal(kids, want_kids)
    return fold if ok else None


def _depth_ok(depth: int) -> None:
    if not 1 <= depth <= MAX_DEPTH:
        raise SnniError(f"GGM depth must be in 1..{MAX_DEPTH}")


def expand_full(
    roots: U8, depth: int, out: U8 | None = None, scratch: Scratch | None = None
) -> tuple[U8, U8]:
    """Sender: the (2^depth, t, 16) leaves of the t roots (into the flat ``out`` of
    2^depth * t blocks, e.g. :meth:`.Blocks.out`, if given), and the level sums (t, depth, 2, 16):
    sums[j, i, b] = XOR of tree j's side-b children at depth i + 1."""
    if roots.ndim != 2 or roots.shape[1] != 16:
        raise SnniError("GGM expansion needs (t, 16) roots")
    _depth_ok(depth)
    t = roots.shape[0]
    last, scratch = _outputs(out, t << depth, scratch, depth, t)
    sums = np.empty((t, depth, 2, 2), dtype=np.uint64)
    level = np.ascontiguousarray(roots)
    for i in range(depth):
        m = 1 << i
        dst = last if i == depth - 1 else scratch.level(i, 2 * m * t)
        level, side = _grow(level, dst, m, t)
        sums[:, i] = side.transpose(1, 0, 2)
    return level.reshape(1 << depth, t, 16), sums.view(np.uint8).reshape(t, depth, 2, 16)


def expand_punctured(
    known_sums: U8,
    sides: U8,
    depth: int,
    out: U8 | None = None,
    scratch: Scratch | None = None,
) -> tuple[U8, NDArray[np.intp], U8]:
    """Receiver: every leaf except the punctured one (left as zeros), as (2^depth, t, 16)
    (into ``out`` if given); the punctured positions alpha (t,); and the XOR of each
    tree's other leaves (t, 16).

    ``sides[j, i]`` is the side b whose sum ``known_sums[j, i]`` the receiver learnt at
    depth i + 1; the path goes the other way, so alpha = sum_i (1 - b_i) 2^i. At each
    depth the off-path child of the path node is the known sum xor every other node on
    that side (the path node's own children are garbage, removed)."""
    t = sides.shape[0]
    if sides.shape != (t, depth) or known_sums.shape != (t, depth, 16):
        raise SnniError("punctured GGM expansion got inconsistent shapes")
    _depth_ok(depth)
    last_out, scratch = _outputs(out, t << depth, scratch, depth, t)
    trees = np.arange(t)
    path = np.zeros(t, dtype=np.intp)
    level = np.zeros((t, 16), dtype=np.uint8)
    total = np.zeros((t, 16), dtype=np.uint8)
    for i in range(depth):
        m = 1 << i
        last = i == depth - 1
        dst, side = _grow(level, last_out if last else scratch.level(i, 2 * m * t), m, t)
        sums = side.view(np.uint8).reshape(2, t, 16)
        b = sides[:, i].astype(np.intp)
        sibling = (b * m + path) * t + trees
        on_path = ((1 - b) * m + path) * t + trees
        dst[sibling] ^= known_sums[:, i] ^ sums[b, trees]
        if last:
            total = known_sums[:, i] ^ sums[1 - b, trees] ^ dst[on_path]
        dst[on_path] = 0
        path = (1 - b) * m + path
        level = dst
    return level.reshape(1 << depth, t, 16), path, total


def xor_all(leaves: U8) -> U8:
    """(t, 16): the XOR of all leaves of each tree of a (2^depth, t, 16) array."""
    out: U8 = np.bitwise_xor.reduce(leaves.view(np.uint64), axis=0).view(np.uint8)
    return out.reshape(leaves.shape[1], 16)
