"""Bit transpose and tight packing against obvious reference implementations."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from secfepas_sdk.errors import SnniError
from secfepas_sdk.snni.ot.bits import (
    pack_bits,
    packed_size,
    transpose_rows,
    transpose_rows_numpy,
    unpack_bits,
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
