"""Fixed-key AES over numpy blocks: the same permutation as cryptography's ECB, in
place or not, per thread, and refused without the room update_into needs."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from secfepas_sdk.errors import SnniError
from secfepas_sdk.snni.ot.aesblocks import Blocks, blocks, encrypt_into

KEY = bytes(range(16))


def _ecb(data: bytes) -> bytes:
    enc = Cipher(algorithms.AES(KEY), modes.ECB()).encryptor()
    return enc.update(data) + enc.finalize()


def test_matches_ecb_in_place_and_into_a_slice() -> None:
    rng = np.random.default_rng(1)
    src = rng.integers(0, 256, (1000, 16), dtype=np.uint8)
    buf = Blocks(1500)
    buf.rows[:] = 0
    encrypt_into(KEY, src, buf.out(200, 1200))
    assert buf.rows[200:1200].tobytes() == _ecb(src.tobytes())
    assert not buf.rows[:200].any() and not buf.rows[1200:].any()  # nothing outside
    buf.rows[:1000] = src
    encrypt_into(KEY, buf.rows[:1000], buf.out(0, 1000))  # in place
    assert buf.rows[:1000].tobytes() == _ecb(src.tobytes())


def test_threads_do_not_share_a_context() -> None:
    src = np.random.default_rng(2).integers(0, 256, (1 << 14, 16), dtype=np.uint8)
    want = _ecb(src.tobytes())
    bad: list[int] = []

    def work() -> None:
        out = Blocks(src.shape[0])
        for _ in range(20):
            encrypt_into(KEY, src, out.out(0, src.shape[0]))
            if out.rows.tobytes() != want:
                bad.append(1)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not bad


def test_large_buffers_are_huge_page_aligned() -> None:
    big = blocks(1 << 20)
    assert big.shape == (1 << 20, 16) and big.ctypes.data % (1 << 21) == 0


def test_refuses_outputs_without_room() -> None:
    src = np.zeros((4, 16), dtype=np.uint8)
    with pytest.raises(SnniError):
        encrypt_into(KEY, src, np.zeros(64, dtype=np.uint8))  # needs 64 + 15
    with pytest.raises(SnniError):
        encrypt_into(KEY, src[:, :8], np.zeros(200, dtype=np.uint8))
    with pytest.raises(SnniError):
        Blocks(-1)


@pytest.mark.parametrize("rows", [1, 4095, 4096, 10_000])
def test_in_place_and_shifted_down_outputs_cross_the_step_size(rows: int) -> None:
    """Overlapping calls (which cryptography 51 refuses) go through the scratch in
    steps: exact in place and with the output a few rows before the input."""
    src = np.random.default_rng(rows).integers(0, 256, (rows, 16), dtype=np.uint8)
    want = _ecb(src.tobytes())
    for shift in (0, 1, 7):
        buf = Blocks(rows + shift)
        buf.rows[shift:] = src
        encrypt_into(KEY, buf.rows[shift:], buf.out(0, rows))
        assert buf.rows[:rows].tobytes() == want


def test_refuses_an_overlapping_output_after_its_input() -> None:
    buf = Blocks(10)
    with pytest.raises(SnniError, match="may not start after"):
        encrypt_into(KEY, buf.rows[:8], buf.out(1, 9))
