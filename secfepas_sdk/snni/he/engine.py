"""The two-party HE linear-layer protocol (Cheetah, BFV with t = 2^l).

Who holds what, for y = W (x0 + x1) mod 2^l:
- client (camera): secret key, input share x0; it encrypts x0 with seeded
  symmetric encryption and sends the ciphertexts.
- server (edge): weights W, input share x1; it adds x1 to each ciphertext,
  multiplies by its NTT-form weight plaintexts, subtracts a fresh uniform mask
  r over every coefficient, re-randomises with a public-key encryption of
  zero, floods the noise, switches to the last modulus and replies
  (:mod:`.blocks`: the work per output ciphertext, which may be split across
  processes without changing a byte).
- Both directions go in chunks of 16 ciphertexts, so each party works on one
  chunk while the other produces the next.
- client decrypts W x - r at the output coefficients: its share of y.
  The server's share is r at the same coefficients.

Circuit privacy: the reply is re-randomised by adding a fresh public-key
encryption of zero, (pk0*u + e1, pk1*u + e2) with ternary u and e1, e2 of
sigma 3.24 (SEAL's Encryptor does the same at the key level; we do it at the
working level, where it costs one plaintext NTT and one multiply), so c1 is a
fresh RLWE sample independent of W (pk1 is the expansion of the edge's own
seed, never the camera's choice, and degenerate keys are refused: keys.py);
and the decryption noise (which depends on W) is hidden by adding a uniform
value in [-2^F, 2^F] to c0, with F at least MIN_FLOOD_SIGMA bits above the
worst-case weight-dependent noise (checked per layer, see params.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from secfepas_sdk._extras import require
from secfepas_sdk.errors import PeerDataError, SnniError
from secfepas_sdk.snni.channel import Channel
from secfepas_sdk.snni.he import bulk, direct, flooding, keys, limbs, sealio
from secfepas_sdk.snni.he.blobs import (
    INPUT_CHUNK,
    REPLY_CHUNK,
    blobs_bound,
    pack_blobs,
    unpack_blobs,
)
from secfepas_sdk.snni.he.blocks import (
    BlockPool,
    LayerPart,
    block_mask,
    input_residues,
    ntt_plain,
)
from secfepas_sdk.snni.he.bulk import SparseKernels
from secfepas_sdk.snni.he.layers import HeLayout
from secfepas_sdk.snni.he.params import (
    MIN_FLOOD_SIGMA,
    HeParams,
    check_layer_noise,
    flood_sigma,
    make_context,
)
from secfepas_sdk.snni.he.reply import ReplyCodec, ReplyFormat
from secfepas_sdk.snni.he.scratch import SealScratch
from secfepas_sdk.snni.he.upload import UploadCodec
from secfepas_sdk.snni.prg import SEED_BYTES, Prg
from secfepas_sdk.snni.ring import Ring

U64 = NDArray[np.uint64]
I64 = NDArray[np.int64]


class _Seal:
    """SEAL objects for one party (context, evaluator, scratch memory)."""

    def __init__(self, params: HeParams, ring: Ring) -> None:
        self.seal: Any = require("tenseal.sealapi", "camera")
        self.params = params
        self.ring = ring
        self.n = params.poly_degree
        self.context = make_context(params, ring.bits)
        self.evaluator = self.seal.Evaluator(self.context)
        self.scratch = SealScratch()
        self.first = self.context.first_parms_id()
        self.last = self.context.last_parms_id()
        self.first_moduli = np.asarray(
            [m.value() for m in self.context.first_context_data().parms().coeff_modulus()],
            dtype=np.uint64,
        )
        limbs = len(params.coeff_bits)
        self.max_ct_bytes = 2 * limbs * self.n * 8 + 4096
        self.last_modulus = int(self.context.last_context_data().parms().coeff_modulus()[0].value())
        self.upload = (
            UploadCodec(self.first_moduli, self.n, sealio.parms_id_bytes(self.first))
            if params.packed_uploads
            else None
        )

    def codec(self, layout: HeLayout, fmt: ReplyFormat) -> ReplyCodec:
        """How one layer's replies travel (the same on both sides, from the plan)."""
        return ReplyCodec(layout, self.last_modulus, fmt)

    def plaintext(self, coeffs: U64) -> Any:
        pt = self.seal.Plaintext()
        self.scratch.load(pt, self.context, sealio.plaintext_bytes(coeffs))
        return pt

    def close(self) -> None:
        self.scratch.close()


class HeClient:
    """Camera side: holds the secret key; encrypts its shares, decrypts replies."""

    def __init__(self, params: HeParams, ring: Ring) -> None:
        self._s = _Seal(params, ring)
        seal = self._s.seal
        keygen = seal.KeyGenerator(self._s.context)
        self._secret = keygen.secret_key()
        self._encryptor = seal.Encryptor(self._s.context, self._secret)
        self._decryptor = seal.Decryptor(self._s.context, self._secret)

    def setup(self, channel: Channel) -> None:
        """Take the edge's seed, send pk0 (the only key material that leaves the
        camera); pk1 is the seed's expansion, which the edge computes itself."""
        with channel.label("he/setup"):
            seed = channel.recv_exact(keys.SEED_BYTES)
            channel.send(keys.camera_pk0(self._s, self._secret, self._encryptor, seed))

    def encrypt(self, polys: U64) -> list[bytes]:
        s = self._s
        out = []
        for poly in polys:
            pt = s.plaintext(poly)
            out.append(s.scratch.save(self._encryptor.encrypt_symmetric(pt)))
        return out

    def uploads(self, polys: U64) -> list[bytes]:
        """The input ciphertexts of ``polys`` as they travel: SEAL's bytes, or bit-packed
        where the parameter set says so (upload.py)."""
        blobs = self.encrypt(polys)
        upload = self._s.upload
        return blobs if upload is None else [upload.encode(blob) for blob in blobs]

    def codec(self, layout: HeLayout, fmt: ReplyFormat) -> ReplyCodec:
        return self._s.codec(layout, fmt)

    def decrypt(self, blobs: list[bytes], codec: ReplyCodec | None = None, first: int = 0) -> U64:
        """Replies ``first``, ``first + 1``, ... of a layer: SEAL ciphertexts, or with
        ``codec`` the trimmed encoding (reply.py), rebuilt as a ciphertext whose c0 is
        zero off the output coefficients (those decrypt to garbage nobody reads)."""
        s = self._s
        n = s.n
        res = np.zeros((len(blobs), n), dtype=np.uint64)
        ct = s.seal.Ciphertext(s.context)
        pt = s.seal.Plaintext()
        last = sealio.parms_id_bytes(s.last)
        for i, blob in enumerate(blobs):
            if codec is not None:
                polys = codec.decode(blob, first + i)[:, None, :]
                blob = sealio.ciphertext_bytes(polys, parms_id=last, ntt_form=False, poly_degree=n)
            s.scratch.load(ct, s.context, blob)
            if ct.parms_id() != s.last or ct.size() != 2 or ct.is_ntt_form():
                raise SnniError("server reply is not a 2-part ciphertext at the last level")
            self._decryptor.decrypt(ct, pt)
            coeffs = sealio.plaintext_coeffs(s.scratch.save(pt))
            res[i, : coeffs.size] = coeffs
        return res

    def noise_budget(self, blob: bytes) -> int:
        """Remaining noise budget of one reply (tests and diagnostics)."""
        s = self._s
        ct = s.seal.Ciphertext(s.context)
        s.scratch.load(ct, s.context, blob)
        return int(self._decryptor.invariant_noise_budget(ct))

    def linear(
        self, channel: Channel, layout: HeLayout, polys: U64, codec: ReplyCodec | None = None
    ) -> U64:
        """Run one layer on the client's packed share; returns its output share.
        ``codec``: the replies come trimmed (plans with a budget), not as SEAL's."""
        if polys.shape != (layout.n_in, layout.n):
            raise SnniError("packed input does not match the layout")
        for start in range(0, layout.n_in, INPUT_CHUNK):
            channel.send(pack_blobs(self.uploads(polys[start : start + INPUT_CHUNK])))
        parts = []
        for start in range(0, layout.n_out, REPLY_CHUNK):
            count = min(REPLY_CHUNK, layout.n_out - start)
            most = self._s.max_ct_bytes if codec is None else codec.max_size
            raw = channel.recv(blobs_bound(count, most))
            blobs = unpack_blobs(raw, count=count, max_each=most)
            parts.append(self.decrypt(blobs, codec, start))
        return np.concatenate(parts).reshape(-1)[layout.out_index]

    def close(self) -> None:
        self._s.close()


@dataclass(slots=True)
class PreparedLayer:
    """Server-side: a layout with its weights as NTT-form plaintexts (or raw polys)."""

    layout: HeLayout
    plains: list[Any] | None
    source: Callable[[int], I64] | None
    flood_bits: int
    index: int  # its place among the server's layers: how another process names it
    reply: ReplyCodec | None = None  # None: replies go as SEAL ciphertexts (plans v1, v2)
    sparse: SparseKernels | None = None  # set: uncached kernels are NTT'd in bulk (bulk.py)
    direct: SparseKernels | None = None  # set: products in the coefficient domain (direct.py)
    limb_bits: int = 0  # the direct path's limb width, from the plan's public L1 bound


class HeServer:
    """Edge side: holds the weights; never sees a secret key."""

    def __init__(self, params: HeParams, ring: Ring, *, prg: Prg | None = None) -> None:
        self._s = _Seal(params, ring)
        self._prg = prg or Prg()
        self._pk_ct: Any = None
        self._layers: list[PreparedLayer] = []
        self.pool: BlockPool | None = None  # set: layer calls split across its processes

    def after_fork(self) -> None:
        """In a process forked from the one that prepared the weights: fresh
        randomness (two sessions must never share a noise stream) and scratch."""
        self._prg = Prg()
        self._pk_ct = None
        self.pool = None
        self._s.scratch.after_fork()

    def after_fork_part(self) -> None:
        """In a process forked from a session's to compute blocks (:meth:`part`): its
        own scratch; it keeps the session's public key and draws only from the seeds
        of the calls it is given, never from the session's stream."""
        self._prg = Prg()
        self.pool = None
        self._s.scratch.after_fork()

    @property
    def max_ct_bytes(self) -> int:
        """The largest serialised ciphertext either party accepts."""
        return self._s.max_ct_bytes

    @property
    def residue_shape(self) -> tuple[int, int, int]:
        """(2, primes, N): one input as :meth:`input_residues` gives it."""
        s = self._s
        return (2, len(s.first_moduli), s.n)

    def input_residues(self, blobs: list[bytes], shares: U64) -> U64:
        """The camera's input ciphertexts (SEAL validates each) plus the edge's shares, as
        residues, for the block processes (:func:`blocks.input_residues`)."""
        return input_residues(self._s, blobs, shares)

    def layer(self, index: int) -> PreparedLayer:
        if not 0 <= index < len(self._layers):
            raise SnniError(f"no prepared HE layer {index}")
        return self._layers[index]

    def setup(self, channel: Channel) -> None:
        """Send a fresh seed for pk1, take the camera's pk0 and refuse a degenerate
        one (PeerDataError); the key is (pk0, expand(seed)), never the camera's pk1."""
        s = self._s
        self._pk_ct = None
        seed = keys.new_seed(self._prg)
        limbs = len(s.first_moduli)
        with channel.label("he/setup"):
            channel.send(seed)
            raw = channel.recv(limbs * s.n * 8)
        if len(raw) != limbs * s.n * 8:
            raise PeerDataError(
                f"the camera's pk0 has {len(raw)} bytes, expected {limbs * s.n * 8}"
            )
        pk0 = np.frombuffer(raw, dtype=np.uint64).reshape(limbs, s.n)
        self._pk_ct = keys.edge_public_key(s, pk0, seed)

    def prepare(
        self,
        layout: HeLayout,
        kernels: I64 | Callable[[int], I64],
        l1_bound: float,
        *,
        cache: bool = True,
        flood_bits: int | None = None,
        reply: ReplyFormat | None = None,
        sparse: SparseKernels | None = None,
    ) -> PreparedLayer:
        """Check the noise budget and pre-encode weights in NTT form (once per model).

        ``kernels`` is the (n_kernels, n) array or a function giving kernel k; without
        ``cache`` the kernels are NTT'd per inference instead (bounded memory).
        ``flood_bits``: the flood the plan's budget sized (snni.privacy); None, or more
        than decrypts, floods at the most that does. ``reply``: send replies trimmed.
        ``sparse``: the same kernels as weights on one support; uncached kernels are
        then NTT'd in bulk where that is cheaper (:func:`bulk.worth_it`: public data)."""
        s = self._s
        if isinstance(kernels, np.ndarray):
            if kernels.shape != (layout.n_kernels, layout.n):
                raise SnniError("kernel polynomials do not match the layout")
            array = kernels
            source: Callable[[int], I64] = lambda k: array[k]  # noqa: E731
        else:
            source = kernels
        flood, _sigma = check_layer_noise(s.params, s.ring.bits, l1_bound)
        flooding.warm_up()
        if flood_bits is not None and flood_bits < flood:
            if flood_sigma(s.params, l1_bound, flood_bits) < MIN_FLOOD_SIGMA:
                raise SnniError(f"a flood of 2^{flood_bits} hides the noise by < 2^-40")
            flood = flood_bits
        index = len(self._layers)
        if cache:
            plains: list[Any] = []
            for k in range(layout.n_kernels):
                poly = source(k)
                plains.append(ntt_plain(s, poly) if poly.any() else None)
            prepared = PreparedLayer(
                layout=layout, plains=plains, source=None, flood_bits=flood, index=index
            )
        else:
            prepared = PreparedLayer(
                layout=layout, plains=None, source=source, flood_bits=flood, index=index
            )
            if sparse is not None and bulk.worth_it(sparse.positions.size, l1_bound, s.params):
                prepared.sparse = sparse
                bulk.warm_up()
        if sparse is not None and direct.worth_it(
            sparse.positions.size, l1_bound, s.params, cached=cache
        ):
            prepared.direct = sparse
            prepared.limb_bits = limbs.limb_bits(l1_bound)
            direct.warm_up()
        if reply is not None:
            prepared.reply = s.codec(layout, reply)
        self._layers.append(prepared)
        return prepared

    def part(self, index: int, seed: bytes, polys: U64, *, part: int, parts: int) -> LayerPart:
        """Blocks part, part + parts, ... of a call of layer ``index`` keyed by ``seed``:
        what one of the session's block processes computes."""
        if self._pk_ct is None:
            raise SnniError("HeServer.setup was not run")
        if len(seed) != SEED_BYTES:
            raise SnniError("bad HE call seed")
        return LayerPart(
            self._s, self._pk_ct, self.layer(index), seed, polys, part=part, parts=parts
        )

    def linear(self, channel: Channel, layer: PreparedLayer, polys: U64) -> U64:
        """Run one layer on the server's packed share; returns its output share (r)."""
        s = self._s
        layout = layer.layout
        if self._pk_ct is None:
            raise SnniError("HeServer.setup was not run")
        if polys.shape != (layout.n_in, layout.n):
            raise SnniError("packed input does not match the layout")
        # Every random value of this call comes from streams keyed by (seed, block).
        seed = self._prg.random_bytes(SEED_BYTES)
        pool: BlockPool = _InProcess(self)
        if self.pool is not None and layout.n_out > 1:  # one block: nothing to split
            pool = self.pool
        pool.start(layer.index, seed, polys)
        most = s.max_ct_bytes if s.upload is None else s.upload.size
        for start in range(0, layout.n_in, INPUT_CHUNK):
            count = min(INPUT_CHUNK, layout.n_in - start)
            raw = channel.recv(blobs_bound(count, most))  # bounded by the plan
            blobs = unpack_blobs(raw, count=count, max_each=most)
            if s.upload is not None:  # rebuilt in seeded form from the residues and seed
                blobs = [s.upload.decode(blob) for blob in blobs]
            elif not all(sealio.is_seeded_ciphertext(blob) for blob in blobs):
                # c1 must be a seed's expansion: one the camera chose (say 2^100) would
                # let a camera that learnt u (keys.py) read the kernels off c1.
                raise PeerDataError("the camera's input ciphertext is not in seeded form")
            pool.feed(raw, blobs)
        batch = []
        for k, reply in enumerate(pool.replies(layout.n_out)):
            batch.append(reply)
            if len(batch) == REPLY_CHUNK or k == layout.n_out - 1:
                channel.send(pack_blobs(batch))  # the client decrypts while we go on
                batch = []
        masks = np.stack([block_mask(s.ring, seed, k, layout.n) for k in range(layout.n_out)])
        return masks.reshape(-1)[layout.out_index]

    def close(self) -> None:
        self._s.close()


class _InProcess:
    """The session's own process computes every block (``he_workers`` = 1)."""

    def __init__(self, server: HeServer) -> None:
        self._server = server
        self._part: LayerPart | None = None

    def start(self, layer: int, seed: bytes, polys: U64) -> None:
        self._part = self._server.part(layer, seed, polys, part=0, parts=1)

    def _started(self) -> LayerPart:
        if self._part is None:
            raise SnniError("HE layer call not started")
        return self._part

    def feed(self, raw: bytes, blobs: list[bytes]) -> None:
        self._started().add(blobs)  # while the client encrypts the next chunk

    def replies(self, count: int) -> Iterator[bytes]:
        return self._started().replies()

    def cpu_seconds(self) -> float:
        return 0.0  # all of it is this process's own
