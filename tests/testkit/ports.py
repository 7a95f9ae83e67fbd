"""Loopback ports for the real servers the tests start (edges, brokers, FHIR servers)."""

from __future__ import annotations

import socket

from testkit.wait import wait_until


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on at the moment of asking."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def listening(port: int) -> bool:
    """Does something accept TCP connections on 127.0.0.1:``port``?"""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def wait_port(port: int, timeout: float = 10.0) -> None:
    """Wait until 127.0.0.1:``port`` accepts connections (WaitTimeout after ``timeout``)."""
    wait_until(lambda: listening(port), timeout, what=f"a listener on 127.0.0.1:{port}")
