"""SoftSpokenOT (Roy, CRYPTO 2022), semi-honest: IKNP's correlation for 128/k bits per OT.

Drop-in for :mod:`.iknp`: the same ``random_ot`` signatures and the same output
correlation, row j of the OT sender q_j = t_j xor r_j * s with s in {0,1}^128,
so the TMMO hash of :mod:`.crhash` and every OT flavour built on it are unchanged.

The 128 columns are cut into n = 128/k small-field VOLE instances of k bits.
Instance i uses base OTs i*k .. i*k+k-1 of the IKNP setup; their choice bits are
the k bits of Delta_i, and s is the concatenation of the Delta_i.

Setup (one message, OT receiver -> OT sender): for each instance, a punctured PRF.
The OT receiver grows a GGM tree of depth k (AES-CTR :class:`Prg` per node) to
2^k leaf seeds and sends, per level, the XOR of all left and of all right
children, each masked with a key derived from one of its two base-OT seeds. The
OT sender, holding base-OT seed Delta_{i,b}, unmasks the sum on the side off
its path and so rebuilds every leaf but the one at x = Delta_i.

Per batch of m OTs with choices r (packed, m bits), both sides stream every leaf
seed through its own persistent :class:`Prg` (counter order across batches):
  OT receiver (all 2^k seeds):  u_i = XOR_x G(s_x),  v_i = XOR_x x * G(s_x)
      (v_i has k bit-planes); sends c_i = u_i xor r for every instance,
      i.e. n * m = 128 m / k bits; its row t_j is bit j of all planes v_i.
  OT sender (seeds x != Delta_i): w_i = XOR_x (x xor Delta_i) * G(s_x)
      = v_i xor Delta_i * u_i (the unknown term has factor 0), then
      q_i = w_i xor Delta_i * c_i = v_i xor Delta_i * r.
Relabelling y = x xor Delta_i turns the sender's sum into the receiver's, so one
vectorised fold over packed bits computes both. Cost: n * 2^k PRG streams per
side instead of IKNP's 128 or 256, i.e. about 2^k / k times the AES work.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
from numpy.typing import NDArray

from secfepas_sdk.errors import SnniError
from secfepas_sdk.snni.channel import Channel
from secfepas_sdk.snni.ot.bits import transpose_rows
from secfepas_sdk.snni.ot.crhash import hash_into
from secfepas_sdk.snni.ot.iknp import KAPPA, MAX_OTS_PER_CALL
from secfepas_sdk.snni.prg import SEED_BYTES, Prg

U64 = NDArray[np.uint64]
U8 = NDArray[np.uint8]

SUPPORTED_K = (1, 2, 4, 6, 8)
DEFAULT_K = 4
_WORK_BYTES = 1 << 22  # PRG output held per chunk: the (n, 2^k, bytes) array stays near 4 MB
_MAX_CHUNK = 1 << 16
_MIN_CHUNK = 1 << 14
# 15 bytes, then k: a 16-byte header. Ferret's bootstrap has its own, so that two
# parties set up for different extensions fail at once, with a clear error.
_MAGICS = {"softspoken": b"secfepas/ssot/1", "ferret": b"secfepas/frrt/1"}


def check_k(k: int) -> int:
    if k not in SUPPORTED_K:
        raise SnniError(f"SoftSpokenOT needs k in {SUPPORTED_K}, got {k}")
    return k


def instance_sizes(k: int) -> tuple[int, ...]:
    """Bits per VOLE instance: floor(128/k) instances of k bits, then one of 128 mod k
    (k = 6: 21 x 6 + 1 x 2, 22 bits per OT). Instance i uses base OTs
    offset_i .. offset_i + k_i - 1; s is still the concatenation of the Delta_i."""
    check_k(k)
    return (k,) * (KAPPA // k) + ((KAPPA % k,) if KAPPA % k else ())


def _offsets(sizes: tuple[int, ...]) -> list[int]:
    return [sum(sizes[:i]) for i in range(len(sizes))]


def _fold_groups(
    prgs: list[list[_StreamPrg]], sizes: tuple[int, ...], first: int, nbytes: int
) -> tuple[U64, U64]:
    """Expand and fold instances of equal size together (sizes are grouped in order):
    planes as (128, words) rows in base-OT order, totals as (n, words)."""
    planes: list[U64] = []
    totals: list[U64] = []
    start = 0
    while start < len(sizes):
        size = sizes[start]
        end = start
        while end < len(sizes) and sizes[end] == size:
            end += 1
        g = _expand(prgs[start:end], first, 1 << size, nbytes)
        p, t = _fold(g.view(np.uint64))
        planes.append(p.reshape(-1, p.shape[-1]))
        totals.append(t)
        start = end
    return np.concatenate(planes), np.concatenate(totals)


def _header(k: int, extension: str = "softspoken") -> bytes:
    """Names the extension and k, so that parties configured differently fail clearly."""
    return _MAGICS[extension] + bytes([check_k(k)])


def setup_message_size(k: int) -> int:
    """Bytes of the one setup message: a 16-byte header, then two masked 16-byte sums
    per tree level; the n = 128/k instances have k levels each, so 4 KiB whatever k."""
    return len(_header(k)) + KAPPA * 2 * SEED_BYTES


def chunk_size(k: int) -> int:
    """OTs per wire message: a multiple of 64, smaller for large k to bound memory."""
    per_seed = _WORK_BYTES // sum(1 << size for size in instance_sizes(k))
    return max(_MIN_CHUNK, min(_MAX_CHUNK, 8 * per_seed)) // 64 * 64


def _check(count: int, width: int) -> None:
    if not 0 <= count <= MAX_OTS_PER_CALL:
        raise SnniError(f"OT batch of {count} is out of range")
    if not 1 <= width <= 64:
        raise SnniError(f"OT output width must be in 1..64 bits, got {width}")


def _children(nodes: U8) -> U8:
    """GGM step: each 16-byte node keys a Prg whose first 32 bytes are its two children."""
    out = np.empty((2 * nodes.shape[0], SEED_BYTES), dtype=np.uint8)
    for a in range(nodes.shape[0]):
        out[2 * a : 2 * a + 2] = Prg(nodes[a].tobytes()).stream(2 * SEED_BYTES).reshape(2, -1)
    return out


def _level_mask(base_seed: U8) -> U8:
    """One-time pad for a level sum, from a base-OT seed used for nothing else."""
    return Prg(base_seed.tobytes()).stream(SEED_BYTES)


class _StreamPrg(Prg):
    """A :class:`Prg` (same seed, same AES-128-CTR stream) that writes its next bytes
    straight into a caller's buffer: no allocation and no copy per seed and chunk."""

    __slots__ = ()

    @staticmethod
    def fill_rows(prgs: list[_StreamPrg], zeros: memoryview, out: U8, offset: int) -> None:
        """Write the next len(zeros) bytes of prgs[j] at out[offset + j * len(zeros):];
        ``out`` needs 15 bytes of slack after the last row (AES-CTR's update_into)."""
        nbytes = len(zeros)
        if offset + len(prgs) * nbytes + 15 > out.size:
            raise SnniError("stream buffer lacks the 15 bytes of slack AES-CTR needs")
        for j, prg in enumerate(prgs):
            lo = offset + j * nbytes
            prg._encryptor.update_into(zeros, out[lo : lo + nbytes + 15].data)


def _fold_numpy(g: U64, planes: U64, total: U64) -> None:
    """planes[i, b] = XOR of g[i, x] over x with bit b set; total[i] = XOR of all g[i, x].
    Pairwise folding: about 2 * 2^k row XORs per instance."""
    n, _, w = g.shape
    cur = g
    for b in range(planes.shape[1]):
        pairs = cur.reshape(n, -1, 2, w)
        odd = pairs[:, :, 1, :]
        planes[:, b] = np.bitwise_xor.reduce(odd, axis=1)
        cur = pairs[:, :, 0, :] ^ odd
    total[:] = cur.reshape(n, w)


def _build_numba() -> Callable[[U64, U64, U64], None] | None:
    """The fold as one numba pass over g (about 8x faster), or None without numba."""
    try:
        import numba
    except ImportError:
        return None

    @numba.njit(cache=True, nogil=True)
    def kernel(g: Any, planes: Any, total: Any) -> None:  # pragma: no cover - compiled
        n, size, w = g.shape
        k = planes.shape[1]
        for i in range(n):
            total[i, :] = 0
            planes[i, :, :] = 0
            for x in range(size):
                for j in range(w):
                    total[i, j] ^= g[i, x, j]
                for b in range(k):
                    if (x >> b) & 1:
                        for j in range(w):
                            planes[i, b, j] ^= g[i, x, j]

    return kernel


_NUMBA: list[Callable[[U64, U64, U64], None] | None] = []


def _fold(g: U64) -> tuple[U64, U64]:
    """(planes, total) of g with shape (n, 2^k, w) words, as :func:`_fold_numpy` defines."""
    if not _NUMBA:
        _NUMBA.append(_build_numba())
    n, size, w = g.shape
    planes = np.empty((n, size.bit_length() - 1, w), dtype=np.uint64)
    total = np.empty((n, w), dtype=np.uint64)
    (_NUMBA[0] or _fold_numpy)(g, planes, total)
    return planes, total


def warm_up() -> None:
    """Load (and if needed compile) the numba fold ahead of the first batch."""
    _fold(np.zeros((1, 2, 1), dtype=np.uint64))


def _expand(prgs: list[list[_StreamPrg]], offset: int, n_rows: int, nbytes: int) -> U8:
    """(n, n_rows, nbytes): row (i, offset + j) holds the next ``nbytes`` of prgs[i][j];
    rows before ``offset`` are zero."""
    flat = np.empty(len(prgs) * n_rows * nbytes + 16, dtype=np.uint8)
    zeros = _zeros(nbytes).data
    for i, row in enumerate(prgs):
        _StreamPrg.fill_rows(row, zeros, flat, (i * n_rows + offset) * nbytes)
    g = flat[:-16].reshape(len(prgs), n_rows, nbytes)
    if offset:
        g[:, :offset] = 0
    return g


_ZEROS: dict[int, U8] = {}


def _zeros(nbytes: int) -> U8:
    if nbytes not in _ZEROS:
        z = np.zeros(nbytes, dtype=np.uint8)
        z.setflags(write=False)
        _ZEROS[nbytes] = z
    return _ZEROS[nbytes]


class SoftSpokenReceiver:
    """OT receiver (VOLE sender, PPRF sender): holds both seeds of every base OT,
    grows all 2^k leaves per instance, and never learns s."""

    __slots__ = ("_counter", "_domain", "_k", "_prgs", "_setup_msg")

    def __init__(self, seeds0: U8, seeds1: U8, *, domain: int, k: int = DEFAULT_K) -> None:
        if seeds0.shape != (KAPPA, SEED_BYTES) or seeds1.shape != (KAPPA, SEED_BYTES):
            raise SnniError("SoftSpokenOT receiver needs 128 seed pairs")
        self._k = check_k(k)
        sizes = instance_sizes(k)
        n = len(sizes)
        roots = np.frombuffer(Prg().random_bytes(n * SEED_BYTES), dtype=np.uint8)
        msg = np.empty((KAPPA, 2, SEED_BYTES), dtype=np.uint8)  # row offset_i + depth
        self._prgs: list[list[_StreamPrg]] = []
        for i, (ki, off) in enumerate(zip(sizes, _offsets(sizes), strict=True)):
            level = roots[i * SEED_BYTES : (i + 1) * SEED_BYTES].reshape(1, SEED_BYTES)
            for d in range(ki):
                level = _children(level)
                p = off + (ki - 1 - d)  # depth d branches on leaf bit ki-1-d
                msg[off + d, 0] = np.bitwise_xor.reduce(level[0::2], axis=0) ^ _level_mask(
                    seeds1[p]
                )
                msg[off + d, 1] = np.bitwise_xor.reduce(level[1::2], axis=0) ^ _level_mask(
                    seeds0[p]
                )
            self._prgs.append([_StreamPrg(leaf.tobytes()) for leaf in level])
        self._setup_msg: bytes | None = _header(k) + msg.tobytes()
        self._counter = 0
        self._domain = domain

    def setup(self, channel: Channel, *, extension: str = "softspoken") -> None:
        """Send the masked GGM level sums (once; the peer's sender calls ``setup`` too),
        under the header of ``extension`` (this one, or Ferret bootstrapping from it)."""
        if self._setup_msg is None:
            raise SnniError("SoftSpokenOT setup already sent")
        head = _header(self._k, extension)
        channel.send(head + self._setup_msg[len(head) :])
        self._setup_msg = None

    def _rows(self, channel: Channel, choices: U8) -> Iterator[tuple[int, U8]]:
        """(start, t rows) chunk by chunk; sends one correction message per chunk."""
        if self._setup_msg is not None:
            raise SnniError("SoftSpokenOT used before setup()")
        count = int(choices.size)
        _check(count, 64)
        flat = choices.reshape(-1).astype(np.uint8)
        if count and int(flat.max()) > 1:
            raise SnniError("OT choices must be bits")
        k = self._k
        chunk = chunk_size(k)
        for start in range(0, count, chunk):
            m = min(chunk, count - start)
            mb, mb8 = (m + 7) // 8, (m + 63) // 64 * 8
            planes, total = _fold_groups(self._prgs, instance_sizes(k), 0, mb8)
            corr = total.view(np.uint8)[:, :mb]
            corr ^= np.packbits(flat[start : start + m], bitorder="little")[None, :]
            channel.send(np.ascontiguousarray(corr))
            yield start, transpose_rows(planes.view(np.uint8).reshape(KAPPA, mb8))[:m]

    def extend(self, channel: Channel, choices: U8) -> U8:
        """The raw rows t_j, shape (count, 16): the peer gets q_j = t_j xor r_j * s."""
        parts = [rows for _, rows in self._rows(channel, choices)]
        return np.concatenate(parts) if parts else np.empty((0, 16), dtype=np.uint8)

    def random_ot(self, channel: Channel, choices: U8, width: int) -> U64:
        """K^{r_j} = H(j, t_j) for choice bits ``choices`` (0/1 uint8)."""
        _check(int(choices.size), width)
        out = np.empty(int(choices.size), dtype=np.uint64)
        for start, rows in self._rows(channel, choices):
            m = rows.shape[0]
            rows = np.ascontiguousarray(rows)
            hash_into(rows, self._counter, self._domain, width, out[start : start + m])
            self._counter += m
        return out


class SoftSpokenSender:
    """OT sender (VOLE receiver, PPRF receiver): holds s = (Delta_i) and every leaf
    seed except the one at x = Delta_i in each instance."""

    __slots__ = ("_counter", "_delta", "_dmask", "_domain", "_k", "_prgs", "_s_bits", "_seeds")

    def __init__(self, s_bits: U8, seeds: U8, *, domain: int, k: int = DEFAULT_K) -> None:
        if s_bits.shape != (KAPPA,) or seeds.shape != (KAPPA, SEED_BYTES):
            raise SnniError("SoftSpokenOT sender needs 128 choice bits and 128 seeds")
        self._k = check_k(k)
        bits = s_bits.astype(np.uint8)
        if int(bits.max()) > 1:
            raise SnniError("base-OT choice bits must be bits")
        self._s_bits = bits
        self._seeds: U8 | None = seeds.copy()  # dropped once the leaves are rebuilt
        self._dmask = (bits * np.uint8(0xFF)).reshape(KAPPA, 1)  # per plane row
        self._delta = np.packbits(bits, bitorder="little")[None, :]
        self._prgs: list[list[_StreamPrg]] | None = None
        self._counter = 0
        self._domain = domain

    def setup(self, channel: Channel, *, extension: str = "softspoken") -> None:
        """Receive the peer's level sums and rebuild the punctured leaves (the header
        must name the same ``extension`` and k)."""
        k = self._k
        sizes = instance_sizes(k)
        seeds = self._seeds
        if seeds is None:
            raise SnniError("SoftSpokenOT setup already done")
        raw = channel.recv_exact(setup_message_size(k))
        head = _header(k, extension)
        if raw[: len(head)] != head:
            theirs = next((name for name, m in _MAGICS.items() if raw.startswith(m)), "another")
            raise SnniError(
                f"the peer set up OT extension {theirs} (k = {raw[15]}), not {extension} "
                f"with k = {k}: both parties must choose the same"
            )
        msg = np.frombuffer(raw[len(head) :], dtype=np.uint8).reshape(KAPPA, 2, SEED_BYTES)
        prgs: list[list[_StreamPrg]] = []
        for ki, off in zip(sizes, _offsets(sizes), strict=True):
            k = ki  # this instance's size (the loop body is per instance)
            delta_bits = self._s_bits[off : off + k]
            alpha = int(sum(int(delta_bits[b]) << b for b in range(k)))
            level = np.zeros((1, SEED_BYTES), dtype=np.uint8)
            path = 0  # index of the unknown node at the current depth
            for d in range(k):
                b = k - 1 - d
                a_bit = (alpha >> b) & 1
                nxt = np.zeros((2 * level.shape[0], SEED_BYTES), dtype=np.uint8)
                known = [a for a in range(level.shape[0]) if a != path]
                if known:
                    kids = _children(level[known])
                    idx = np.array([[2 * a, 2 * a + 1] for a in known]).reshape(-1)
                    nxt[idx] = kids
                side = 1 - a_bit  # the off-path child, whose level sum we can unmask
                # msg[., ., side] is masked with base seed 1 - side = a_bit: the one we hold.
                level_sum = msg[off + d, side] ^ _level_mask(seeds[off + b])
                nxt[2 * path + side] = level_sum ^ np.bitwise_xor.reduce(nxt[side::2], axis=0)
                path = 2 * path + a_bit
                level = nxt
            # Leaf y of this instance is x = y xor Delta_i; y = 0 (x = Delta_i) is unknown.
            prgs.append([_StreamPrg(level[y ^ alpha].tobytes()) for y in range(1, 1 << k)])
        self._prgs, self._seeds = prgs, None

    def _rows(self, channel: Channel, count: int) -> Iterator[tuple[int, U8]]:
        """(start, q rows) chunk by chunk; reads one correction message per chunk."""
        if self._prgs is None:
            raise SnniError("SoftSpokenOT used before setup()")
        _check(count, 64)
        sizes = instance_sizes(self._k)
        n = len(sizes)
        row_instance = np.repeat(np.arange(n), sizes)  # plane row -> its instance
        chunk = chunk_size(self._k)
        for start in range(0, count, chunk):
            m = min(chunk, count - start)
            mb, mb8 = (m + 7) // 8, (m + 63) // 64 * 8
            corr = np.frombuffer(channel.recv_exact(n * mb), dtype=np.uint8).reshape(n, mb)
            planes, _ = _fold_groups(self._prgs, sizes, 1, mb8)
            q = planes.view(np.uint8).reshape(KAPPA, mb8)
            q[:, :mb] ^= corr[row_instance] & self._dmask
            yield start, transpose_rows(q)[:m]

    def extend(self, channel: Channel, count: int) -> U8:
        """The raw rows q_j = t_j xor r_j * s, shape (count, 16)."""
        parts = [rows for _, rows in self._rows(channel, count)]
        return np.concatenate(parts) if parts else np.empty((0, 16), dtype=np.uint8)

    def random_ot(self, channel: Channel, count: int, width: int) -> tuple[U64, U64]:
        """Both outputs (K^0, K^1) = (H(j, q_j), H(j, q_j xor s)), ``width`` bits each."""
        _check(count, width)
        k0 = np.empty(count, dtype=np.uint64)
        k1 = np.empty(count, dtype=np.uint64)
        for start, rows in self._rows(channel, count):
            m = rows.shape[0]
            hash_into(
                np.ascontiguousarray(rows), self._counter, self._domain, width,
                k0[start : start + m], delta=self._delta, out_delta=k1[start : start + m],
            )  # fmt: skip
            self._counter += m
        return k0, k1
