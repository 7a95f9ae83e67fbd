"""SEAL's serialisation format to and from numpy: a pure byte codec.

``tenseal.sealapi`` has no coefficient setter or getter that is not a per-element
Python call. So we write and read SEAL's byte format ourselves (little endian):
a 16-byte SEALHeader (magic 0xA15E, header size 16, version, compression mode,
size), then the object's members. We always write uncompressed objects; SEAL
writes zstd-compressed ones, which we inflate (bounded). Getting bytes into and
out of SEAL objects is :mod:`.scratch`'s job.
"""

from __future__ import annotations

import struct

import numpy as np
import zstandard
from numpy.typing import NDArray

from secfepas_sdk.errors import SnniError

U64 = NDArray[np.uint64]

_MAGIC = 0xA15E
_HEADER = struct.Struct("<HBBBBHQ")  # magic, header size, major, minor, compr, reserved, size
_VERSION = (4, 3)  # SEAL 4.x as shipped in tenseal 0.3.18
_COMPR_NONE = 0
_COMPR_ZSTD = 2
_MAX_INFLATED = 1 << 24  # no single object we handle is above 16 MiB
_PARMS_ID_ZERO = bytes(32)
SEED_BYTES = 64  # SEAL's prng_seed_type: 8 x uint64
PRNG_BLAKE2XB = 1  # SEAL's prng_type::blake2xb
_PRNG_INFO_SIZE = 16 + 1 + SEED_BYTES  # a UniformRandomGeneratorInfo: header, type, seed


def _header(total_size: int) -> bytes:
    return _HEADER.pack(_MAGIC, 16, _VERSION[0], _VERSION[1], _COMPR_NONE, 0, total_size)


def _dynarray(values: U64) -> bytes:
    body = struct.pack("<Q", values.size) + values.tobytes()
    return _header(16 + len(body)) + body


def parms_id_bytes(parms_id: list[int]) -> bytes:
    return struct.pack("<4Q", *parms_id)


def plaintext_bytes(coeffs: U64) -> bytes:
    """An uncompressed coefficient-form plaintext (parms id zero, scale 1)."""
    data = np.ascontiguousarray(coeffs, dtype=np.uint64)
    body = _PARMS_ID_ZERO + struct.pack("<Qd", data.size, 1.0) + _dynarray(data)
    return _header(16 + len(body)) + body


def ciphertext_bytes(
    polys: U64, *, parms_id: bytes, ntt_form: bool, poly_degree: int, scale: float = 1.0
) -> bytes:
    """An uncompressed ciphertext from ``polys`` of shape (size, limbs, N)."""
    data = np.ascontiguousarray(polys, dtype=np.uint64)
    size, limbs, n = data.shape
    if n != poly_degree:
        raise SnniError(f"ciphertext polys have degree {n}, expected {poly_degree}")
    body = (
        parms_id
        + struct.pack("<B", 1 if ntt_form else 0)
        + struct.pack("<QQQdQ", size, poly_degree, limbs, scale, 1)
        + _dynarray(data.reshape(-1))
    )
    return _header(16 + len(body)) + body


def ntt_plaintext_bytes(values: U64, *, parms_id: bytes) -> bytes:
    """An uncompressed NTT-form plaintext: (limbs, N) values at level ``parms_id``."""
    data = np.ascontiguousarray(values, dtype=np.uint64).reshape(-1)
    body = parms_id + struct.pack("<Qd", data.size, 1.0) + _dynarray(data)
    return _header(16 + len(body)) + body


def seeded_ciphertext_bytes(
    c0: U64, seed: bytes, *, parms_id: bytes, ntt_form: bool, poly_degree: int
) -> bytes:
    """A 2-part ciphertext in SEAL's seeded form: c0 of shape (limbs, N), then the
    Blake2xb seed from which SEAL's loader expands c1 (``Ciphertext::expand_seed``:
    c1 = sample_poly_uniform(Blake2xb(seed)), read in the ciphertext's own form)."""
    if len(seed) != SEED_BYTES:
        raise SnniError(f"a SEAL seed has {SEED_BYTES} bytes, not {len(seed)}")
    data = np.ascontiguousarray(c0, dtype=np.uint64)
    limbs, n = data.shape
    if n != poly_degree:
        raise SnniError(f"ciphertext polys have degree {n}, expected {poly_degree}")
    info = _HEADER.pack(_MAGIC, 16, *_VERSION, _COMPR_NONE, 0, _PRNG_INFO_SIZE)
    body = (
        parms_id
        + struct.pack("<B", 1 if ntt_form else 0)
        + struct.pack("<QQQdQ", 2, poly_degree, limbs, 1.0, 1)
        + _dynarray(data.reshape(-1))
        + info
        + struct.pack("<B", PRNG_BLAKE2XB)
        + seed
    )
    return _header(16 + len(body)) + body


def _members(raw: bytes) -> bytes:
    """The member bytes of a saved object, inflated when SEAL compressed them."""
    if len(raw) < _HEADER.size:
        raise SnniError("SEAL object shorter than its header")
    magic, hsize, _major, _minor, compr, _res, size = _HEADER.unpack_from(raw)
    if magic != _MAGIC or hsize != 16 or size != len(raw):
        raise SnniError("not a valid SEAL object")
    payload = raw[16:]
    if compr == _COMPR_NONE:
        return payload
    if compr == _COMPR_ZSTD:
        try:
            return zstandard.ZstdDecompressor().decompress(payload, max_output_size=_MAX_INFLATED)
        except zstandard.ZstdError as exc:
            raise SnniError(f"corrupt SEAL object: {exc}") from exc
    raise SnniError(f"unsupported SEAL compression mode {compr}")


def _read_dynarray(members: bytes, offset: int) -> U64:
    magic, hsize, _ma, _mi, compr, _r, _size = _HEADER.unpack_from(members, offset)
    if magic != _MAGIC or hsize != 16 or compr != _COMPR_NONE:
        raise SnniError("bad SEAL array header")
    (count,) = struct.unpack_from("<Q", members, offset + 16)
    start = offset + 24
    if start + 8 * count > len(members):
        raise SnniError("truncated SEAL array")
    return np.frombuffer(members, dtype=np.uint64, count=count, offset=start).copy()


def plaintext_coeffs(raw: bytes) -> U64:
    """Coefficients of a saved coefficient-form plaintext (zero-padded to coeff count)."""
    members = _members(raw)
    (count,) = struct.unpack_from("<Q", members, 32)
    data = _read_dynarray(members, 48)
    if data.size > count:
        raise SnniError("plaintext data longer than its coefficient count")
    return data


def _seed_info_offset(members: bytes) -> int | None:
    """Where the PRNG info of a 2-part ciphertext in seeded form starts, else None."""
    if len(members) < 33 + 40 + 24:
        return None
    size, degree, limbs, _scale, _corr = struct.unpack_from("<QQQdQ", members, 33)
    magic, hsize, _ma, _mi, compr, _r, _size = _HEADER.unpack_from(members, 73)
    if magic != _MAGIC or hsize != 16 or compr != _COMPR_NONE:
        return None
    (count,) = struct.unpack_from("<Q", members, 73 + 16)
    info = 73 + 24 + 8 * count
    if size != 2 or count != degree * limbs or len(members) != info + _PRNG_INFO_SIZE:
        return None
    magic, hsize, _ma, _mi, compr, _r, isize = _HEADER.unpack_from(members, info)
    seeded = (
        magic == _MAGIC
        and hsize == 16
        and compr == _COMPR_NONE
        and isize == _PRNG_INFO_SIZE
        and members[info + 16] in (1, 2)  # SEAL's prng_type: blake2xb, shake256
    )
    return info if seeded else None


def is_seeded_ciphertext(raw: bytes) -> bool:
    """Is ``raw`` a 2-part ciphertext in SEAL's seeded form (c0, then the PRNG seed
    SEAL's loader expands c1 from), so that its sender could not choose c1?"""
    return _seed_info_offset(_members(raw)) is not None


def seeded_ciphertext_parts(raw: bytes) -> tuple[bytes, bool, U64, int, bytes]:
    """(parms id, NTT flag, c0 of shape (limbs, N), PRNG type, seed) of a saved
    ciphertext in seeded form (:func:`is_seeded_ciphertext`)."""
    members = _members(raw)
    info = _seed_info_offset(members)
    if info is None:
        raise SnniError("not a SEAL ciphertext in seeded form")
    _size, degree, limbs, _scale, _corr = struct.unpack_from("<QQQdQ", members, 33)
    c0 = np.frombuffer(members, dtype=np.uint64, count=limbs * degree, offset=73 + 24)
    seed = members[info + 17 : info + 17 + SEED_BYTES]
    return members[:32], members[32] != 0, c0.reshape(limbs, degree), members[info + 16], seed


def ciphertext_polys(raw: bytes) -> tuple[bytes, bool, U64]:
    """(parms id, NTT flag, polys of shape (size, limbs, N)) of a saved full ciphertext."""
    members = _members(raw)
    parms = members[:32]
    ntt = members[32] != 0
    size, degree, limbs, _scale, _corr = struct.unpack_from("<QQQdQ", members, 33)
    data = _read_dynarray(members, 33 + 40)
    if data.size != size * limbs * degree:
        raise SnniError("ciphertext data size does not match its header")
    return parms, ntt, data.reshape(size, limbs, degree)
