"""Helpers for the HE split tests: one camera's encrypted input, replayed to several
edge servers, so that their replies and shares can be compared byte for byte."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from secfepas_sdk.snni.channel import Channel, run_pair
from secfepas_sdk.snni.he.blobs import INPUT_CHUNK, REPLY_CHUNK, pack_blobs, unpack_blobs
from secfepas_sdk.snni.he.blocks import LayerPart
from secfepas_sdk.snni.he.engine import HeClient, HeServer
from secfepas_sdk.snni.he.layers import ConvLayer, ConvSpec, MatmulLayer
from secfepas_sdk.snni.he.params import BFV_N8192
from secfepas_sdk.snni.prg import Prg
from secfepas_sdk.snni.ring import Ring

RING = Ring(bits=37, frac_bits=12)
N = BFV_N8192.poly_degree
SERVER_SEED = bytes(range(16))
# Conv kinds the direct-path tests run (1x1, strided, padded 3x3, depthwise, groups).
CONV_SPECS = {
    "1x1": ConvSpec(in_shape=(40, 7, 7), out_channels=12, kernel=(1, 1)),
    "3x3-stride2": ConvSpec(
        in_shape=(6, 9, 9), out_channels=5, kernel=(3, 3), stride=(2, 2), pads=(1, 1, 1, 1)
    ),
    "3x3": ConvSpec(in_shape=(12, 10, 10), out_channels=8, kernel=(3, 3), pads=(1, 1, 1, 1)),
    "depthwise": ConvSpec(
        in_shape=(9, 8, 8), out_channels=9, kernel=(3, 3), pads=(1, 1, 1, 1), groups=9
    ),
    "groups": ConvSpec(in_shape=(8, 6, 6), out_channels=4, kernel=(1, 1), groups=2),
}


@dataclass
class Case:
    """One layer with weights, and both parties' shares of one input."""

    layer: ConvLayer | MatmulLayer
    w: np.ndarray
    x: np.ndarray
    x0: np.ndarray
    x1: np.ndarray


def conv_case(seed: int = 1) -> Case:
    """A small conv with more than one chunk of replies each way."""
    spec = ConvSpec(in_shape=(40, 10, 10), out_channels=24, kernel=(3, 3), pads=(1, 1, 1, 1))
    layer = ConvLayer(spec, N, {"cp": 2, "th": 10, "tw": 10, "no": 1})
    rng = np.random.default_rng(seed)
    w = rng.integers(-(1 << 10), 1 << 10, size=(24, 40, 3, 3), dtype=np.int64)
    return _case(layer, w, spec.in_shape)


def gemm_case(seed: int = 2) -> Case:
    layer = MatmulLayer(3000, 40, N, {"kc": 1000})  # 6 output blocks
    w = np.random.default_rng(seed).integers(-(1 << 10), 1 << 10, size=(40, 3000), dtype=np.int64)
    return _case(layer, w, (3000,))


def _case(layer: ConvLayer | MatmulLayer, w: np.ndarray, shape: tuple[int, ...]) -> Case:
    x = RING.random(Prg(), shape)
    x0, x1 = RING.share(x, Prg())
    return Case(layer=layer, w=w, x=x, x0=x0, x1=x1)


def server_for(client: HeClient, seed: bytes = SERVER_SEED) -> HeServer:
    """A set-up edge server whose randomness is fixed by ``seed``."""
    server = HeServer(BFV_N8192, RING, prg=Prg(seed))
    run_pair(client.setup, server.setup)
    return server


def camera_messages(client: HeClient, case: Case) -> list[bytes]:
    """What the camera sends for the case's layer (encrypted once, replayed)."""
    polys = case.layer.pack(case.x0)
    return [
        pack_blobs(client.uploads(polys[start : start + INPUT_CHUNK]))
        for start in range(0, len(polys), INPUT_CHUNK)
    ]


def replay(server: HeServer, case: Case, messages: list[bytes], prepared: Any) -> Any:
    """(reply ciphertexts, the edge's output share) of one call on ``messages``."""
    n_out = case.layer.layout.n_out

    def camera(ch: Channel) -> list[bytes]:
        for message in messages:
            ch.send(message)
        replies: list[bytes] = []
        for start in range(0, n_out, REPLY_CHUNK):
            count = min(REPLY_CHUNK, n_out - start)
            replies += unpack_blobs(ch.recv(), count=count, max_each=server.max_ct_bytes)
        return replies

    replies, y1 = run_pair(camera, lambda ch: server.linear(ch, prepared, case.layer.pack(case.x1)))
    return replies, y1


def camera_share(client: HeClient, case: Case, replies: list[bytes]) -> np.ndarray:
    """The camera's output share: its decryption of the replies at the output places."""
    out: np.ndarray = client.decrypt(replies).reshape(-1)[case.layer.layout.out_index]
    return out


def reference(case: Case) -> np.ndarray:
    """W x in the ring, in the layer's output order."""
    layer, w = case.layer, case.w
    if isinstance(layer, MatmulLayer):
        return RING.reduce(w @ RING.to_signed(case.x))
    spec = layer.spec
    c, h, wd = spec.in_shape
    xp = np.zeros((c, h + 2, wd + 2), dtype=np.int64)
    xp[:, 1 : 1 + h, 1 : 1 + wd] = RING.to_signed(case.x)
    m, ho, wo = spec.out_shape
    y = np.zeros((m, ho, wo), dtype=np.int64)
    for di in range(3):
        for dj in range(3):
            y += np.tensordot(w[:, :, di, dj], xp[:, di : di + ho, dj : dj + wo], axes=(1, 0))
    return RING.reduce(y).reshape(-1)


class SplitInProcess:
    """A pool whose 'processes' are LayerParts in this process: the engine's contract."""

    def __init__(self, server: HeServer, parts: int, *, residues: bool = False) -> None:
        self._server, self._n, self._residues = server, parts, residues
        self._parts: list[LayerPart] = []
        self._polys = np.zeros(0, dtype=np.uint64)
        self._fed = 0

    def start(self, layer: int, seed: bytes, polys: np.ndarray) -> None:
        self._parts = [
            self._server.part(layer, seed, polys, part=j, parts=self._n) for j in range(self._n)
        ]
        self._polys, self._fed = polys, 0

    def feed(self, raw: bytes, blobs: list[bytes]) -> None:
        """Each part loads the camera's bytes itself, or (``residues``, as the edge's
        pool does) the session's process loads them once and hands on the residues."""
        shares = self._polys[self._fed : self._fed + len(blobs)]
        self._fed += len(blobs)
        residues = self._server.input_residues(blobs, shares) if self._residues else None
        for part in self._parts:
            if residues is None:
                part.add(blobs)
            else:
                part.add_residues(residues)

    def replies(self, count: int) -> Iterator[bytes]:
        streams = [part.replies() for part in self._parts]
        for k in range(count):
            yield next(streams[k % self._n])


def ring_conv(spec: ConvSpec, w: np.ndarray, x: np.ndarray) -> np.ndarray:
    """W x in the ring (signed int64 arithmetic), in the layer's output order."""
    c, h, wd = spec.in_shape
    top, left, bottom, right = spec.pads
    xp = np.zeros((c, h + top + bottom, wd + left + right), dtype=np.int64)
    xp[:, top : top + h, left : left + wd] = RING.to_signed(x)
    m, ho, wo = spec.out_shape
    (sh, sw), (kh, kw) = spec.stride, spec.kernel
    cg, mg = c // spec.groups, m // spec.groups
    y = np.zeros((m, ho, wo), dtype=np.int64)
    for g in range(spec.groups):
        xs = xp[g * cg : (g + 1) * cg]
        for di in range(kh):
            for dj in range(kw):
                patch = xs[:, di : di + sh * ho : sh, dj : dj + sw * wo : sw]
                y[g * mg : (g + 1) * mg] += np.tensordot(
                    w[g * mg : (g + 1) * mg, :, di, dj], patch, axes=(1, 0)
                )
    return RING.reduce(y).reshape(-1)
