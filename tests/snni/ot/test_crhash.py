"""The fixed-key AES TMMO hash: deterministic, tweak-separated, uniform-looking."""

from __future__ import annotations

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from secfepas_sdk.snni.ot.crhash import FIXED_KEY, crhash, crhash_u64, tweaks


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
