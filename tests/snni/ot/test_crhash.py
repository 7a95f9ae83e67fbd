"""The fixed-key AES TMMO hash: deterministic, tweak-separated, uniform-looking."""

from __future__ import annotations

import numpy as np
import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from hypothesis import given, settings
from hypothesis import strategies as st

from secfepas_sdk.errors import SnniError
from secfepas_sdk.snni.ot import crhash as crhash_mod
from secfepas_sdk.snni.ot.crhash import FIXED_KEY, crhash, crhash_u64, hash_into, tweaks


def test_matches_the_tmmo_formula() -> None:
    x = np.random.default_rng(1).integers(0, 256, (4, 16), dtype=np.uint8)
    tw = tweaks(7, 4, domain=1)

    def pi(block: bytes) -> bytes:
        enc = Cipher(algorithms.AES(FIXED_KEY), modes.ECB()).encryptor()
        return enc.update(block) + enc.finalize()

    for i in range(4):
        px = pi(x[i].tobytes())
        inner = bytes(a ^ b for a, b in zip(px, tw[i].tobytes(), strict=True))
        expected = bytes(a ^ b for a, b in zip(pi(inner), px, strict=True))
        assert crhash(x[i : i + 1], tw[i : i + 1]).tobytes() == expected


def test_tweak_and_domain_separate_outputs() -> None:
    x = np.zeros((2, 16), dtype=np.uint8)
    a = crhash(x, tweaks(0, 2, domain=0))
    b = crhash(x, tweaks(0, 2, domain=1))
    assert not np.array_equal(a[0], a[1])  # same input, different index
    assert not np.array_equal(a, b)
    assert np.array_equal(a, crhash(x, tweaks(0, 2, domain=0)))


def test_output_bits_are_balanced() -> None:
    x = np.zeros((1 << 14, 16), dtype=np.uint8)  # worst case: all-equal inputs
    out = crhash_u64(x, tweaks(0, 1 << 14, domain=0), 64)
    bits = np.unpackbits(out.view(np.uint8))
    assert abs(bits.mean() - 0.5) < 0.01
    assert int(crhash_u64(x[:64], tweaks(0, 64, domain=0), 5).max()) < 32


@settings(max_examples=30, deadline=None)
@given(
    n=st.integers(0, 40_000),
    width=st.integers(1, 64),
    start=st.integers(0, 2**40),
    flip=st.booleans(),
    pair=st.booleans(),
    numba_passes=st.booleans(),
)
def test_hash_into_equals_the_reference(
    n: int, width: int, start: int, flip: bool, pair: bool, numba_passes: bool
) -> None:
    """The cache-sized fast path gives crhash_u64's values, with and without the
    sender's flips (rows xor d * delta) and its second key (xor delta), with the
    numba passes and with the numpy ones."""
    kernels = crhash_mod._hash_kernels()
    if numba_passes and kernels is None:
        pytest.skip("numba is not installed")
    rng = np.random.default_rng(n + width)
    rows = rng.integers(0, 256, (n, 16), dtype=np.uint8)
    delta = rng.integers(0, 256, (1, 16), dtype=np.uint8)
    d = rng.integers(0, 2, n).astype(np.uint8)
    x = rows ^ ((d * np.uint8(0xFF))[:, None] & delta) if flip else rows
    out, out2 = np.empty(n, np.uint64), np.empty(n, np.uint64)
    crhash_mod._hash_chunks(
        rows, start, 5, width, out,
        delta if (flip or pair) else None,
        d if flip else None,
        out2 if pair else None,
        kernels if numba_passes else None,
    )  # fmt: skip
    if not numba_passes:  # the public entry point, on whatever it selected
        got, got2 = np.empty(n, np.uint64), np.empty(n, np.uint64)
        hash_into(
            rows, start, 5, width, got,
            delta=delta if (flip or pair) else None,
            flip=d if flip else None,
            out_delta=got2 if pair else None,
        )  # fmt: skip
        np.testing.assert_array_equal(got, out)
        if pair:
            np.testing.assert_array_equal(got2, out2)
    tw = tweaks(start, n, domain=5)
    np.testing.assert_array_equal(out, crhash_u64(x, tw, width))
    if pair:
        np.testing.assert_array_equal(out2, crhash_u64(x ^ delta, tw, width))


def test_hash_into_refuses_bad_arguments() -> None:
    rows = np.zeros((4, 16), dtype=np.uint8)
    out = np.empty(4, np.uint64)
    with pytest.raises(SnniError):
        hash_into(rows, 0, 0, 65, out)
    with pytest.raises(SnniError):
        hash_into(rows, 0, 0, 8, np.empty(3, np.uint64))
    with pytest.raises(SnniError):
        hash_into(rows, 0, 0, 8, out, out_delta=np.empty(4, np.uint64))  # no delta
    with pytest.raises(SnniError):
        hash_into(rows[:, :8], 0, 0, 8, out)


def test_hash_kernels_are_in_use() -> None:
    """With numba installed the one-pass kernels pass their self-test and run."""
    pytest.importorskip("numba")
    assert crhash_mod._hash_kernels() is not None
