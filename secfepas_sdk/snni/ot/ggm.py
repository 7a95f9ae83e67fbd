"""GGM trees for Ferret's single-point COT, expanded level by level across many trees.

The length-doubling PRG is G(x) = (pi_0(x) xor x, pi_1(x) xor x) with pi_b AES-128
under two fixed public keys (the fixed-key "TwoKeyPRP" GGM of Ferret and of Guo,
Katz, Wang, Yu; S&P 2020, secure in the ideal-permutation model). Fixed keys let one
AES-ECB call (``update_into`` on numpy buffers, no Python ``bytes``) expand one whole
level of every tree at once.

Who holds what: the COT sender (holder of Delta) grows full trees from its secret
random roots and publishes, per level, the two masked sums of left and right
children. The COT receiver, who learns one of those sums per level, rebuilds every
leaf except the one at its punctured index alpha (the path it never learns).
Trees are (t, 2^h, 16) uint8 arrays, leaf index most significant bit first.
"""

from __future__ import annotations

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from numpy.typing import NDArray

from secfepas_sdk.errors import SnniError

U8 = NDArray[np.uint8]
U64 = NDArray[np.uint64]

# Public "nothing up my sleeve" keys: the first 16 bytes of SHA-256("secfepas ggm left"/"right").
LEFT_KEY = bytes.fromhex("1ad8e8138f7c552efd7e67cf89f0f7a1")
RIGHT_KEY = bytes.fromhex("d06af8998c7239a8a4f729dd3110f28b")
# ECB is right here: pi_b is AES used as a fixed public permutation, block by block.
_PI = (
    Cipher(algorithms.AES(LEFT_KEY), modes.ECB()),  # noqa: S305
    Cipher(algorithms.AES(RIGHT_KEY), modes.ECB()),  # noqa: S305
)


def _children(nodes: U8, out: U8 | None = None) -> U8:
    """(t, m, 16) nodes -> (t, 2m, 16) children: child 2a + b = pi_b(x_a) xor x_a
    (written into ``out`` when given, e.g. a slice of the caller's output buffer)."""
    t, m, _ = nodes.shape
    src = np.ascontiguousarray(nodes)
    flat = src.reshape(-1)
    dest = np.empty((t, m, 2, 16), dtype=np.uint8) if out is None else out.reshape(t, m, 2, 16)
    scratch = np.empty(flat.size + 16, dtype=np.uint8)
    for b in (0, 1):
        enc = _PI[b].encryptor()
        enc.update_into(flat.data, scratch.data)
        np.bitwise_xor(scratch[: flat.size].reshape(t, m, 16), src, out=dest[:, :, b, :])
    return dest.reshape(t, 2 * m, 16)


def _side_sums(level: U8) -> U64:
    """(t, 2, 2) uint64: XOR of the even (left) and of the odd (right) nodes of each tree,
    by halving folds over contiguous slices (much faster than a strided reduce)."""
    t, m, _ = level.shape
    words = level.view(np.uint64).reshape(t, m // 2, 4)
    while words.shape[1] > 1:
        half = words.shape[1] // 2
        folded = words[:, :half] ^ words[:, half : 2 * half]
        if words.shape[1] % 2:
            folded[:, 0] ^= words[:, 2 * half]
        words = folded
    out: U64 = words[:, 0].reshape(t, 2, 2)
    return out


def xor_all(level: U8) -> U8:
    """(t, 16): the XOR of all nodes of each tree (folds, as :func:`_side_sums`)."""
    sides = _side_sums(level).view(np.uint8).reshape(level.shape[0], 2, 16)
    out: U8 = sides[:, 0] ^ sides[:, 1]
    return out


def expand_full(roots: U8, depth: int, out: U8 | None = None) -> tuple[U8, U8]:
    """Sender: the 2^depth leaves of each root (into ``out`` if given), and the level
    sums (t, depth, 2, 16): sums[j, i, b] = XOR of the side-b children at depth i + 1."""
    if roots.ndim != 2 or roots.shape[1] != 16 or not 1 <= depth <= 20:
        raise SnniError("GGM expansion needs (t, 16) roots and a depth in 1..20")
    t = roots.shape[0]
    sums = np.empty((t, depth, 2, 2), dtype=np.uint64)
    level = roots.reshape(t, 1, 16)
    for i in range(depth):
        level = _children(level, out if i == depth - 1 else None)
        sums[:, i] = _side_sums(level)
    return level, sums.view(np.uint8).reshape(t, depth, 2, 16)


def expand_punctured(
    known_sums: U8, sides: U8, depth: int, out: U8 | None = None
) -> tuple[U8, NDArray[np.intp]]:
    """Receiver: every leaf except the punctured one (left as zeros), and alpha
    (leaves into ``out`` if given).

    ``sides[j, i]`` is the side b whose sum ``known_sums[j, i]`` the receiver learnt at
    depth i + 1; the path goes the other way, so alpha's bits are 1 - b (MSB first).
    At each depth the off-path child of the path node is the known sum xor every
    other node on that side (the path node's own children are garbage, removed)."""
    t = sides.shape[0]
    if sides.shape != (t, depth) or known_sums.shape != (t, depth, 16):
        raise SnniError("punctured GGM expansion got inconsistent shapes")
    rows = np.arange(t)
    path = np.zeros(t, dtype=np.intp)
    level = np.zeros((t, 1, 16), dtype=np.uint8)
    for i in range(depth):
        level = _children(level, out if i == depth - 1 else None)
        b = sides[:, i].astype(np.intp)
        side_sum = _side_sums(level).view(np.uint8).reshape(t, 2, 16)[rows, b]
        sibling = 2 * path + b
        level[rows, sibling] = known_sums[:, i] ^ side_sum ^ level[rows, sibling]
        path = 2 * path + 1 - b
        level[rows, path] = 0
    return level, path
