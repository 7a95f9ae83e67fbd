"""Run both parties of a protocol over the in-memory pair or over loopback TCP."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from typing import Any

import pytest

from secfepas_sdk.snni.channel import Channel, SocketChannel, run_pair


def run_tcp(client: Callable[[Channel], Any], server: Callable[[Channel], Any]) -> tuple[Any, Any]:
    """Both parties in threads, connected through a real loopback TCP socket."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    results: list[Any] = [None, None]
    errors: list[BaseException] = []

    def serve() -> None:
        conn, _ = listener.accept()
        with SocketChannel(conn, timeout_s=60) as ch:
            try:
                results[1] = server(ch)
            except BaseException as exc:
                errors.append(exc)

    thread = threading.Thread(target=serve)
    thread.start()
    with SocketChannel(socket.create_connection(("127.0.0.1", port)), timeout_s=60) as ch:
        try:
            results[0] = client(ch)
        except BaseException as exc:
            errors.append(exc)
    thread.join(60)
    listener.close()
    if errors:
        raise errors[0]
    return results[0], results[1]


@pytest.fixture(params=["memory", "tcp"])
def run_parties(request: pytest.FixtureRequest) -> Callable[..., tuple[Any, Any]]:
    if request.param == "memory":
        return run_pair
    return run_tcp
