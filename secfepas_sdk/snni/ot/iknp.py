"""IKNP OT extension (Ishai, Kilian, Nissim, Petrank; CRYPTO 2003), semi-honest.

Setup reverses the roles of 128 base OTs: the extension *sender* picks a
secret s in {0,1}^128 and receives seed k_i^{s_i}; the extension *receiver*
holds both seeds (k_i^0, k_i^1). Each seed drives a persistent AES-CTR
:class:`Prg`, so later batches keep extending the same streams and the base
OTs are run once per session.

A batch of m random OTs with receiver choices r in {0,1}^m:
  receiver: t_i = G(k_i^0), u_i = t_i ^ G(k_i^1) ^ r (128 rows of m bits); sends u
  sender:   q_i = G(k_i^{s_i}) ^ s_i u_i = t_i ^ s_i r, so row j of Q is t_j ^ r_j s
  outputs:  sender K_j^0 = H(j, q_j), K_j^1 = H(j, q_j ^ s); receiver H(j, t_j) = K_j^{r_j}
with H the fixed-key AES TMMO hash of :mod:`.crhash`, tweaked by a global OT
counter and a direction tag so no two hash inputs share a tweak. Cost: 16
bytes from receiver to sender per OT, no message back.

Batches are cut into chunks of 2^16 OTs, each its own message, so memory stays
bounded and the sender can start hashing before the receiver finishes.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from secfepas_sdk.errors import SnniError
from secfepas_sdk.snni.channel import Channel
from secfepas_sdk.snni.ot.bits import transpose_rows
from secfepas_sdk.snni.ot.crhash import hash_into
from secfepas_sdk.snni.prg import Prg

KAPPA = 128  # computational security parameter (bits): 128 base OTs
CHUNK = 1 << 16  # OTs per message
MAX_OTS_PER_CALL = 1 << 31

U64 = NDArray[np.uint64]
U8 = NDArray[np.uint8]


def _check(count: int, width: int) -> None:
    if not 0 <= count <= MAX_OTS_PER_CALL:
        raise SnniError(f"OT batch of {count} is out of range")
    if not 1 <= width <= 64:
        raise SnniError(f"OT output width must be in 1..64 bits, got {width}")


def _expand(prgs: list[Prg], nbytes: int) -> U8:
    out = np.empty((len(prgs), nbytes), dtype=np.uint8)
    for i, prg in enumerate(prgs):
        out[i] = prg.stream(nbytes)
    return out


class IknpSender:
    """Extension sender: holds s and one seed per base OT (never s itself on the wire)."""

    __slots__ = ("_counter", "_delta", "_domain", "_prgs", "_smask")

    def __init__(self, s_bits: U8, seeds: U8, *, domain: int) -> None:
        if s_bits.shape != (KAPPA,) or seeds.shape != (KAPPA, 16):
            raise SnniError("IKNP sender needs 128 choice bits and 128 seeds")
        self._prgs = [Prg(seeds[i].tobytes()) for i in range(KAPPA)]
        self._smask = (s_bits.astype(np.uint8) * np.uint8(0xFF))[:, None]
        self._delta = np.packbits(s_bits.astype(np.uint8), bitorder="little")[None, :]
        self._counter = 0
        self._domain = domain

    def random_ot(self, channel: Channel, count: int, width: int) -> tuple[U64, U64]:
        """Both outputs (K^0, K^1) of ``count`` random OTs, ``width`` bits each."""
        _check(count, width)
        k0 = np.empty(count, dtype=np.uint64)
        k1 = np.empty(count, dtype=np.uint64)
        for start in range(0, count, CHUNK):
            m = min(CHUNK, count - start)
            mb = (m + 7) // 8
            u = np.frombuffer(channel.recv_exact(KAPPA * mb), dtype=np.uint8).reshape(KAPPA, mb)
            q = _expand(self._prgs, mb)
            q ^= u & self._smask
            rows = np.ascontiguousarray(transpose_rows(q)[:m])
            hash_into(
                rows, self._counter, self._domain, width,
                k0[start : start + m], delta=self._delta, out_delta=k1[start : start + m],
            )  # fmt: skip
            self._counter += m
        return k0, k1


class IknpReceiver:
    """Extension receiver: holds both seeds of every base OT."""

    __slots__ = ("_counter", "_domain", "_prgs0", "_prgs1")

    def __init__(self, seeds0: U8, seeds1: U8, *, domain: int) -> None:
        if seeds0.shape != (KAPPA, 16) or seeds1.shape != (KAPPA, 16):
            raise SnniError("IKNP receiver needs 128 seed pairs")
        self._prgs0 = [Prg(seeds0[i].tobytes()) for i in range(KAPPA)]
        self._prgs1 = [Prg(seeds1[i].tobytes()) for i in range(KAPPA)]
        self._counter = 0
        self._domain = domain

    def random_ot(self, channel: Channel, choices: U8, width: int) -> U64:
        """K^{r_j} for choice bits ``choices`` (0/1 uint8); sends the u matrix."""
        count = int(choices.size)
        _check(count, width)
        flat = choices.reshape(-1).astype(np.uint8)
        if count and int(flat.max()) > 1:
            raise SnniError("OT choices must be bits")
        out = np.empty(count, dtype=np.uint64)
        for start in range(0, count, CHUNK):
            m = min(CHUNK, count - start)
            mb = (m + 7) // 8
            r = np.packbits(flat[start : start + m], bitorder="little")
            t = _expand(self._prgs0, mb)
            u = _expand(self._prgs1, mb)
            u ^= t
            u ^= r[None, :]
            channel.send(u)
            rows = np.ascontiguousarray(transpose_rows(t)[:m])
            hash_into(rows, self._counter, self._domain, width, out[start : start + m])
            self._counter += m
        return out
