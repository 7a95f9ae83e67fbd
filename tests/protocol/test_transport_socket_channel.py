"""SocketChannel (length-prefixed SNNI messages over a blocking stream socket):
the same accounting as the in-memory pair, and bounds on what the peer announces."""

from __future__ import annotations

import socket
import threading

import pytest

from secfepas_sdk.protocol.transport import SocketChannel, read_exact
from secfepas_sdk.snni.channel import ChannelError


def test_messages_rounds_and_labels_over_a_socketpair() -> None:
    s1, s2 = socket.socketpair()
    with SocketChannel(s1, timeout_s=5) as a, SocketChannel(s2, timeout_s=5) as b:

        def echo() -> None:
            for _ in range(3):
                b.send(b.recv()[::-1])

        peer = threading.Thread(target=echo)
        peer.start()
        with a.label("layer1"):
            for i in range(3):
                a.send(bytes(range(i + 2)))
                assert a.recv_exact(i + 2) == bytes(range(i + 2))[::-1]
        peer.join(10)
        assert a.stats.rounds == 3
        assert a.stats.by_label["layer1"].bytes_sent == 2 + 3 + 4
        assert b.stats.bytes_received == 9


def test_rejects_an_oversized_announcement_before_buffering() -> None:
    s1, s2 = socket.socketpair()
    with SocketChannel(s1, timeout_s=5, max_message=64) as a:
        s2.sendall((1 << 40).to_bytes(8, "big"))
        with pytest.raises(ChannelError, match="bound"):
            a.recv()
    s2.close()


def test_read_exact_reports_eof_and_timeout() -> None:
    s1, s2 = socket.socketpair()
    s1.settimeout(0.2)
    with pytest.raises(ChannelError, match="failed"):
        read_exact(s1, 4)  # nothing arrives: timeout
    s2.sendall(b"ab")
    s2.close()
    with pytest.raises(ChannelError, match="peer closed"):
        read_exact(s1, 4)
    s1.close()
