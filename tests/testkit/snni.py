"""Helpers shared by the snni privacy tests: a channel pair that records each party's view, and a
chi-square check that bytes look uniform."""

from __future__ import annotations

import queue
from typing import Any

import numpy as np

from secfepas_sdk.snni.channel import MemoryChannel

# 255 degrees of freedom: the 0.9999 quantile is about 340.
CHI2_LIMIT = 340.0


class Recording(MemoryChannel):
    """A memory channel end that keeps every payload it receives (a party's view)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.view: list[bytes] = []

    def _recv_message(self, max_bytes: int) -> bytes:
        payload = super()._recv_message(max_bytes)
        self.view.append(payload)
        return payload


def recording_pair() -> tuple[Recording, Recording]:
    """Connected (client, server) ends that both record what they receive."""
    a_to_b: queue.Queue[Any] = queue.Queue()
    b_to_a: queue.Queue[Any] = queue.Queue()
    return Recording(a_to_b, b_to_a, timeout_s=60), Recording(b_to_a, a_to_b, timeout_s=60)


def chi_square_uniform_bytes(data: bytes) -> float:
    """Pearson chi-square of the byte histogram against the uniform distribution."""
    counts = np.bincount(np.frombuffer(data, dtype=np.uint8), minlength=256)
    expected = len(data) / 256
    return float(((counts - expected) ** 2 / expected).sum())
