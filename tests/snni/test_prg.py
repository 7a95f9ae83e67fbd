"""AES-CTR PRG: determinism per seed, independence across seeds, output ranges."""

from __future__ import annotations

import numpy as np
import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from secfepas_sdk.errors import InvalidValueError
from secfepas_sdk.snni.prg import Prg, derive_seed


def test_is_aes_ctr_from_zero_nonce() -> None:
    seed = bytes(range(16))
    enc = Cipher(algorithms.AES(seed), modes.CTR(bytes(16))).encryptor()
    assert Prg(seed).random_bytes(100) == enc.update(bytes(100))


def test_stream_continues_across_calls_and_chunks() -> None:
    seed = b"k" * 16
    whole = Prg(seed).random_bytes((1 << 20) + 33)
    prg = Prg(seed)
    parts = prg.random_bytes(7) + prg.random_bytes(1 << 20) + prg.random_bytes(26)
    assert whole == parts


def test_fresh_seeds_differ_and_fork_is_independent() -> None:
    a, b = Prg(), Prg()
    assert a.random_bytes(32) != b.random_bytes(32)
    child = a.fork()
    assert child.random_bytes(32) != a.random_bytes(32)


def test_ranges_and_balance() -> None:
    prg = Prg()
    v = prg.uint64(1 << 14, bits=37)
    assert int(v.max()) < 1 << 37
    bits = prg.bits((1 << 14,))
    assert set(np.unique(bits).tolist()) == {0, 1}
    assert abs(float(bits.mean()) - 0.5) < 0.03
    assert prg.block128(5).shape == (5, 16)
    out = np.zeros(40, dtype=np.uint8)
    prg.fill(out)
    assert out.any()


def test_rejects_bad_seed_and_width() -> None:
    with pytest.raises(ValueError):
        Prg(b"short")
    with pytest.raises(ValueError):
        Prg().uint64(4, bits=65)


def test_derived_seeds_are_a_prf_of_the_pair() -> None:
    seed = bytes(range(16))
    ecb = Cipher(algorithms.AES(seed), modes.ECB()).encryptor()
    block = (1 << 63 | 2).to_bytes(8, "big") + (5).to_bytes(8, "big")
    assert derive_seed(seed, 2, 5) == ecb.update(block)
    pairs = [(s, i) for s in range(3) for i in range(50)]
    assert len({derive_seed(seed, s, i) for s, i in pairs}) == len(pairs)
    assert derive_seed(bytes(16), 2, 5) != derive_seed(seed, 2, 5)
    # never a block of the CTR stream under the same key
    stream = Prg(seed).random_bytes(16 * 64)
    assert all(derive_seed(seed, s, i) not in stream for s, i in pairs)
    with pytest.raises(InvalidValueError):
        derive_seed(b"short", 0, 0)
    with pytest.raises(InvalidValueError):
        derive_seed(seed, 1 << 63, 0)
