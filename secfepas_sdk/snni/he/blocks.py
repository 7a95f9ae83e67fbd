"""The edge's work on the output blocks of one HE layer call, and its randomness.

Who holds what: the edge (server) holds the weights, its input share x1 and the
camera's public key; it never sees a secret key. For each output ciphertext
(block) k it computes sum_i ct_i * K_ik + u_k * pk, subtracts a uniform mask r_k,
adds the flooding noise E_k and the e1, e2 of the encryption of zero, and
switches to the last modulus (docs/snni-he.md, "Circuit privacy").

Blocks are independent, so one layer call may be split across processes (the
edge's ``he_workers``). For that split to change no byte, every random value of
block k comes from PRG streams keyed by (the call's seed, k) (:func:`prg.derive_seed`),
never from one sequential stream: u_k, E_k, e1_k and e2_k from the noise stream
of k, r_k from its mask stream. Whichever process computes block k draws
exactly what one process would, and the party that keeps r (the session's own
process) regenerates it from the seed without the noise.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from numpy.typing import NDArray

from secfepas_sdk.errors import SnniError
from secfepas_sdk.snni.he import direct_outputs, sealio
from secfepas_sdk.snni.he.bulk import BulkNtt
from secfepas_sdk.snni.he.direct import DirectProducts, InputLimbs
from secfepas_sdk.snni.he.direct_outputs import OutputGather
from secfepas_sdk.snni.he.flooding import flood_residues
from secfepas_sdk.snni.prg import Prg, derive_seed
from secfepas_sdk.snni.ring import Ring

if TYPE_CHECKING:
    from secfepas_sdk.snni.he.engine import PreparedLayer, _Seal

U64 = NDArray[np.uint64]
I64 = NDArray[np.int64]

CBD_ETA = 21
NOISE_STREAM = 1  # u, E, e1, e2 of block k
MASK_STREAM = 2  # r of block k


class BlockPool(Protocol):
    """Other processes that compute a layer call's output blocks (the edge's
    ``he_workers``, :mod:`secfepas_sdk.edge.he_pool`). The engine hands it bytes
    and reads the replies back in block order; it never sees a secret."""

    def start(self, layer: int, seed: bytes, polys: U64) -> None:
        """Begin layer ``layer``'s call keyed by ``seed`` on the edge's packed share."""

    def feed(self, raw: bytes, blobs: list[bytes]) -> None:
        """One camera message of input ciphertexts, and its blobs (checked by the engine
        against the plan; SEAL checks each one where it is loaded)."""

    def replies(self, count: int) -> Iterator[bytes]:
        """The ``count`` replies of the call, block 0 first."""
        ...

    def cpu_seconds(self) -> float:
        """CPU-seconds its other processes have used so far (0 for none), so that the
        per-op accounting counts the HE work wherever it runs."""
        ...


def block_mask(ring: Ring, seed: bytes, k: int, n: int) -> U64:
    """r_k: the edge's output share of block k, over all n coefficients."""
    return ring.random(Prg(derive_seed(seed, MASK_STREAM, k)), n)


def load_input(s: _Seal, blob: bytes, share: U64) -> Any:
    """The camera's input ciphertext ``blob`` (untrusted: SEAL validates it, and it must
    be a fresh 2-part one at the working level) plus the edge's share of the same
    polynomial, in coefficient form."""
    ct = s.seal.Ciphertext(s.context)
    s.scratch.load(ct, s.context, blob)
    if ct.parms_id() != s.first or ct.size() != 2 or ct.is_ntt_form():
        raise SnniError("client ciphertext has the wrong level, size or form")
    s.evaluator.add_plain_inplace(ct, s.plaintext(share))
    return ct


def input_polys(s: _Seal, blob: bytes, share: U64) -> U64:
    """(2, primes, N) residues of :func:`load_input` (read back through SEAL's save)."""
    return sealio.ciphertext_polys(s.scratch.save(load_input(s, blob, share)))[2]


def input_residues(s: _Seal, blobs: list[bytes], shares: U64) -> U64:
    """(count, 2, primes, N) :func:`input_polys` of each blob with its share: what the
    session's process hands its block processes, so that the camera's bytes are parsed
    once, in one process, however many compute on them."""
    if shares.shape != (len(blobs), s.n):
        raise SnniError("input shares do not match the ciphertexts")
    out = np.empty((len(blobs), 2, len(s.first_moduli), s.n), dtype=np.uint64)
    for j, blob in enumerate(blobs):
        out[j] = input_polys(s, blob, shares[j])
    return out


def ntt_plain(s: _Seal, poly: I64) -> Any:
    """A signed kernel polynomial as an NTT-form plaintext at the working level."""
    pt = s.plaintext(s.ring.reduce(poly))
    s.evaluator.transform_to_ntt_inplace(pt, s.first)
    return pt


class LayerPart:
    """The blocks k = part, part + parts, ... of one layer call, in one process.

    ``add`` takes the camera's input ciphertexts as they arrive (only those the
    blocks read are loaded); ``replies`` then yields one reply per block in order."""

    def __init__(
        self,
        s: _Seal,
        pk_ct: Any,
        layer: PreparedLayer,
        seed: bytes,
        polys: U64,
        *,
        part: int = 0,
        parts: int = 1,
    ) -> None:
        layout = layer.layout
        if not 0 <= part < parts:
            raise SnniError(f"bad HE split: part {part} of {parts}")
        if polys.shape != (layout.n_in, layout.n):
            raise SnniError("packed input does not match the layout")
        self._s, self._pk_ct, self._layer, self._seed, self._polys = s, pk_ct, layer, seed, polys
        self.blocks = range(part, layout.n_out, parts)
        self.needed = frozenset(i for k in self.blocks for i, _kern in layout.terms[k])
        self._cts: dict[int, Any] = {}
        # direct path (direct.py): inputs kept in coefficient form, split into limbs once
        # as they arrive, products outside SEAL
        self._limbs: InputLimbs | None = None
        if layer.direct is not None:
            moduli = [int(q) for q in s.first_moduli]
            self._limbs = InputLimbs(self.needed, moduli, layer.limb_bits, s.n)
        self._products: Iterator[tuple[int, U64]] | None = None
        self._next = 0  # inputs arrive in order
        self._bulk: BulkNtt | None = None
        # The last block's kernel plaintexts: the tiles of one output block follow each
        # other and read the same kernels, which are then NTT'd once, not per tile.
        self._last: tuple[list[int], list[Any]] = ([], [])

    def add(self, blobs: list[bytes]) -> None:
        """The next input ciphertexts (from the camera: SEAL validates each)."""
        s = self._s
        for i, j in self._arriving(len(blobs)):
            if self._limbs is not None:
                self._limbs.add(i, input_polys(s, blobs[j], self._polys[i]))
                continue
            ct = load_input(s, blobs[j], self._polys[i])
            s.evaluator.transform_to_ntt_inplace(ct)
            self._cts[i] = ct

    def add_residues(self, residues: U64) -> None:
        """The next inputs as :func:`input_residues` made them (a block process's: the
        session's process loaded and checked the camera's bytes, and added x1)."""
        s = self._s
        if residues.ndim != 4 or residues.shape[1:] != (2, len(s.first_moduli), s.n):
            raise SnniError("input residues do not match the parameter set")
        for i, j in self._arriving(residues.shape[0]):
            polys = residues[j]
            if self._limbs is not None:
                self._limbs.add(i, polys)
                continue
            ct = self._coeff_ct(polys)
            s.evaluator.transform_to_ntt_inplace(ct)
            self._cts[i] = ct

    def _arriving(self, count: int) -> Iterator[tuple[int, int]]:
        """(input index, place in the chunk) of the next ``count`` inputs that this part's
        blocks read (inputs arrive in order; the others are skipped unread)."""
        start = self._next
        if start + count > self._layer.layout.n_in:
            raise SnniError("more input ciphertexts than the layout has")
        self._next += count
        return ((i, i - start) for i in range(start, start + count) if i in self.needed)

    def replies(self) -> Iterator[bytes]:
        if self._next != self._layer.layout.n_in:
            raise SnniError("the layer's input ciphertexts are incomplete")
        layer = self._layer
        if layer.direct is not None and self._limbs is not None:
            s = self._s
            direct = DirectProducts(
                layer.direct,
                layer.layout.terms,
                [int(q) for q in s.first_moduli],
                layer.limb_bits,
                s.n,
                c0_at=self._c0_gather(),
            )
            self._products = direct.products(list(self.blocks), self._limbs)
        for k in self.blocks:
            yield self._reply(k)
        self._cts.clear()
        self._limbs = None
        self._products = None
        self._last = ([], [])
        self._bulk = None

    def _c0_gather(self) -> OutputGather | None:
        """With trimmed replies, c0 is needed at the output coefficients only: gather
        it there (direct_outputs.py) when they are few enough (public layout data)."""
        layer = self._layer
        if layer.reply is None or layer.direct is None:
            return None
        n, outputs = layer.layout.n, layer.reply.coefficients
        if not direct_outputs.worth_it(outputs.size, n):
            return None
        return direct_outputs.OutputGather(layer.direct.positions, outputs, n)

    def _reply(self, k: int) -> bytes:
        s = self._s
        ev = s.evaluator
        layer = self._layer
        noise = Prg(derive_seed(self._seed, NOISE_STREAM, k))
        # Start from a fresh encryption of zero, u * pk (re-randomisation), in NTT form;
        # all-zero kernels (structural or pruned) are skipped: SEAL refuses them.
        acc = s.seal.Ciphertext(s.context)
        ev.multiply_plain(self._pk_ct, self._ternary_ntt(noise), acc)
        if self._products is not None:
            # the direct path's sum_i ct_i K_i comes in coefficient form: the noise is
            # added to it in numpy, so SEAL loads one ciphertext, not two
            ev.transform_from_ntt_inplace(acc)
            extra = self._direct_product(k, noise, layer.flood_bits)
        else:
            tmp = s.seal.Ciphertext(s.context)
            terms = layer.layout.terms[k]
            for (i, _kern), plain in zip(terms, self._kernels(terms), strict=True):
                if plain is None:
                    continue  # each kernel is NTT'd just before its product: still in cache
                ev.multiply_plain(self._cts[i], plain, tmp)
                ev.add_inplace(acc, tmp)
            ev.transform_from_ntt_inplace(acc)
            extra = self._noise_polys(noise, layer.flood_bits)
        # Additions mod q commute (add_plain adds a value that depends on r alone), so
        # either path gives the same canonical residues: the same bytes.
        ev.add_inplace(acc, self._coeff_ct(extra))
        r = block_mask(s.ring, self._seed, k, s.n)
        ev.add_plain_inplace(acc, s.plaintext((np.uint64(0) - r) & s.ring.mask))
        ev.mod_switch_to_inplace(acc, s.last)
        saved = s.scratch.save(acc)
        return saved if layer.reply is None else layer.reply.encode(saved, k)

    def _direct_product(self, k: int, noise: Prg, bits: int) -> U64:
        """Block k's sum_i ct_i * K_i from the direct path (the same polynomial mod q as
        SEAL's products give) plus its noise (E + e1, e2), (2, primes, n) mod q."""
        assert self._products is not None
        got, polys = next(self._products)
        if got != k:
            raise SnniError("direct products out of block order")
        moduli = self._s.first_moduli[:, None]
        return (polys + self._noise_polys(noise, bits)) % moduli  # both below q < 2^60

    def _coeff_ct(self, polys: U64) -> Any:
        """A coefficient-form ciphertext at the working level from (2, primes, n) residues."""
        s = self._s
        raw = sealio.ciphertext_bytes(
            polys, parms_id=sealio.parms_id_bytes(s.first), ntt_form=False, poly_degree=s.n
        )
        ct = s.seal.Ciphertext(s.context)
        s.scratch.load(ct, s.context, raw)
        return ct

    def _kernels(self, terms: list[tuple[int, int]]) -> Iterator[Any]:
        """NTT-form plaintexts of the kernels of one block's terms, in order (None: all
        zero); uncached ones are made as they are read, and kept for the next block."""
        layer = self._layer
        ids = [kern for _i, kern in terms]
        if layer.plains is not None:
            yield from (layer.plains[kern] for kern in ids)
            return
        if ids == self._last[0]:
            yield from self._last[1]
            return
        plains: list[Any] = []
        self._last = ([], [])
        if layer.sparse is not None:
            if self._bulk is None:
                self._bulk = BulkNtt(self._s, layer.sparse)
            plains = self._bulk.plains(ids)
            yield from plains
        else:
            for kern in ids:
                poly = layer.source(kern)  # type: ignore[misc]
                plains.append(ntt_plain(self._s, poly) if poly.any() else None)
                yield plains[-1]
        self._last = (ids, plains)

    @staticmethod
    def _cbd(prg: Prg, count: int) -> I64:
        """Centred binomial noise (eta = 21, sigma 3.24, |e| <= 21), as SEAL's sigma 3.2."""
        a = np.bitwise_count(prg.uint64(count, CBD_ETA)).astype(np.int64)
        b = np.bitwise_count(prg.uint64(count, CBD_ETA)).astype(np.int64)
        return a - b

    def _ternary_ntt(self, prg: Prg) -> Any:
        """A fresh uniform ternary u as an NTT-form plaintext: the secret distribution the
        HE standard's 128-bit bound for N = 8192 assumes (and SEAL's own encryptor uses).
        A 64-bit draw mod 3 is within 2^-64 of uniform per coefficient (2^-51 per u)."""
        s = self._s
        u = (prg.uint64(s.n) % np.uint64(3)).astype(np.int64) - 1
        pt = s.plaintext(s.ring.reduce(u))  # -1 becomes t-1; SEAL lifts it back to -1
        s.evaluator.transform_to_ntt_inplace(pt, s.first)
        return pt

    def _mod_q(self, values: I64) -> U64:
        """Small signed values mod each working prime, limbs stacked: (limbs, n)."""
        limbs = []
        for q in self._s.first_moduli:
            qi = np.int64(q)
            limbs.append(
                np.where(values < 0, (values + qi).view(np.uint64), values.view(np.uint64))
            )
        return np.stack(limbs)

    def _noise_polys(self, prg: Prg, bits: int) -> U64:
        """(E + e1, e2) in coefficient form, (2, primes, n) mod q: E uniform in
        [-2^bits, 2^bits) floods the decryption noise (flooding.flood_residues: any width
        the working modulus allows); e1, e2 complete the public-key encryption of zero."""
        s = self._s
        n = s.n
        moduli = s.first_moduli[:, None]
        polys = np.zeros((2, len(s.first_moduli), n), dtype=np.uint64)
        flood = flood_residues(prg, bits, s.first_moduli, n)
        polys[0] = (flood + self._mod_q(self._cbd(prg, n))) % moduli
        polys[1] = self._mod_q(self._cbd(prg, n))
        return polys
