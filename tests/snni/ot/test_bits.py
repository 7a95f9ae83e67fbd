"""Bit transpose and tight packing against obvious reference implementations."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from secfepas_sdk.errors import SnniError
from secfepas_sdk.snni.ot import bits as bits_mod
from secfepas_sdk.snni.ot.bits import (
    pack_bits,
    pack_bits_numpy,
    packed_size,
    transpose_rows,
    transpose_rows_numpy,
    unpack_bits,
    unpack_bits_numpy,
)


def reference_transpose(rows: np.ndarray) -> np.ndarray:
    bits = np.unpackbits(rows, axis=1, bitorder="little")
    return np.packbits(np.ascontiguousarray(bits.T), axis=1, bitorder="little")


@pytest.mark.parametrize(("r", "mb"), [(8, 1), (128, 1), (128, 37), (256, 64), (16, 513)])
def test_transpose_matches_reference(r: int, mb: int) -> None:
    rows = np.random.default_rng(r * mb).integers(0, 256, (r, mb), dtype=np.uint8)
    expected = reference_transpose(rows)
    np.testing.assert_array_equal(transpose_rows(rows), expected)
    np.testing.assert_array_equal(transpose_rows_numpy(rows), expected)


def test_transpose_rejects_ragged_rows() -> None:
    with pytest.raises(SnniError):
        transpose_rows(np.zeros((12, 4), dtype=np.uint8))


@settings(max_examples=60, deadline=None)
@given(
    width=st.integers(1, 64),
    values=st.lists(st.integers(0, 2**64 - 1), min_size=0, max_size=300),
)
def test_pack_roundtrip(width: int, values: list[int]) -> None:
    arr = np.array(values, dtype=np.uint64)
    if width < 64:
        arr &= np.uint64((1 << width) - 1)
    buf = pack_bits(arr, width)
    assert len(buf) == packed_size(arr.size, width)
    np.testing.assert_array_equal(unpack_bits(buf, arr.size, width), arr)


def test_pack_roundtrip_across_chunks() -> None:
    arr = np.random.default_rng(0).integers(0, 1 << 37, (1 << 18) + 5, dtype=np.uint64)
    np.testing.assert_array_equal(unpack_bits(pack_bits(arr, 37), arr.size, 37), arr)


def test_unpack_rejects_wrong_length() -> None:
    with pytest.raises(SnniError):
        unpack_bits(b"\x00" * 5, 10, 5)
    with pytest.raises(SnniError):
        pack_bits(np.zeros(3, dtype=np.uint64), 0)


def test_pack_kernels_are_in_use() -> None:
    """With numba installed (it is in the camera and edge extras) the kernels pass
    their self-test; without it the numpy forms run."""
    pytest.importorskip("numba")
    assert bits_mod._pack_kernels() is not None


@settings(max_examples=80, deadline=None)
@given(
    width=st.integers(1, 64),
    values=st.lists(st.integers(0, 2**64 - 1), min_size=0, max_size=200),
    dtype=st.sampled_from([np.uint64, np.uint32, np.uint8, np.int64]),
    pad=st.integers(0, 255),
)
def test_pack_matches_numpy_form(width: int, values: list[int], dtype: type, pad: int) -> None:
    """Same bytes as the numpy form for any width, dtype and high bits above the
    width; unpacking agrees and ignores the padding bits of the last byte."""
    bits = 8 * np.dtype(dtype).itemsize
    arr = np.array([v % (1 << bits) for v in values], dtype=np.uint64).astype(dtype)
    if width > bits:
        arr = arr.astype(np.uint64)
    buf = pack_bits(arr, width)
    assert buf == pack_bits_numpy(arr, width)
    spare = 8 * len(buf) - arr.size * width
    padded = bytearray(buf)
    if spare:
        padded[-1] |= (pad << (8 - spare)) & 0xFF
    for out_dtype in (np.uint64, np.uint8) if width <= 8 else (np.uint64,):
        got = unpack_bits(bytes(padded), arr.size, width, out_dtype)
        assert got.dtype == np.dtype(out_dtype)
        np.testing.assert_array_equal(got, unpack_bits_numpy(buf, arr.size, width, out_dtype))


def test_pack_matches_numpy_form_across_chunks() -> None:
    arr = np.random.default_rng(3).integers(0, 1 << 63, (1 << 18) + 77, dtype=np.uint64)
    for width in (2, 37, 64):
        buf = pack_bits(arr, width)
        assert buf == pack_bits_numpy(arr, width)
        np.testing.assert_array_equal(
            unpack_bits(buf, arr.size, width), unpack_bits_numpy(buf, arr.size, width)
        )
