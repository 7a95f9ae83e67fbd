"""Channels: ordering, byte and round accounting by label, bounds on peer input."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from secfepas_sdk.snni.channel import Channel, ChannelError, memory_pair, run_pair


def ping_pong(a: Channel, b: Channel) -> None:
    def peer() -> None:
        for _ in range(3):
            b.send(b.recv()[::-1])

    t = threading.Thread(target=peer)
    t.start()
    with a.label("layer1"):
        for i in range(3):
            a.send(bytes([i]) * (i + 1))
            assert a.recv_exact(i + 1) == bytes([i]) * (i + 1)
    t.join(10)


def test_memory_accounting() -> None:
    a, b = memory_pair(timeout_s=5)
    ping_pong(a, b)
    assert a.stats.bytes_sent == a.stats.bytes_received == 6
    assert a.stats.rounds == 3
    assert a.stats.by_label["layer1"].bytes_sent == 6
    assert a.stats.as_dict()["messages_sent"] == 3


def test_arrays_and_bounds() -> None:
    a, b = memory_pair(timeout_s=5)
    arr = np.arange(6, dtype=np.uint64).reshape(2, 3)
    a.send(arr)
    np.testing.assert_array_equal(b.recv_uint64((2, 3)), arr)
    a.send(b"12345")
    with pytest.raises(ChannelError):
        b.recv_exact(4)
    a.send(b"x" * 100)
    with pytest.raises(ChannelError):
        b.recv(max_bytes=10)


def test_timeout_and_close_are_errors() -> None:
    a, b = memory_pair(timeout_s=0.2)
    with pytest.raises(ChannelError, match="no message"):
        a.recv()
    b.close()
    with pytest.raises(ChannelError, match="closed"):
        a.recv()


def test_run_pair_propagates_errors() -> None:
    def bad(ch: Channel) -> None:
        raise ValueError("boom")

    with pytest.raises((ValueError, ChannelError)):
        run_pair(bad, lambda ch: ch.recv(), timeout_s=5)
