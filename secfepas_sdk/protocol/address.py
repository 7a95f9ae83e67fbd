"""``HOST:PORT`` as operators write it, for the camera's edge address and the
edge's listen address (one parser, one error message)."""

from __future__ import annotations

from secfepas_sdk.errors import InvalidValueError

__all__ = ["parse_host_port"]


def parse_host_port(
    address: str | tuple[str, int], *, what: str = "edge address", listen: bool = False
) -> tuple[str, int]:
    """``"host:port"``, ``"[v6]:port"`` or a ``(host, port)`` tuple -> (host, port).

    ``listen`` admits port 0 (the system picks one). A missing or bad port is an
    InvalidValueError naming ``what`` and HOST:PORT.
    """
    if isinstance(address, tuple):
        host, port = address
    else:
        host, sep, port_text = address.rpartition(":")
        if not sep or not port_text.isdigit():
            raise InvalidValueError(f"{what} must be HOST:PORT, got {address!r}")
        port = int(port_text)
        host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    lowest = 0 if listen else 1
    if not host or not lowest <= int(port) < 65536:
        raise InvalidValueError(
            f"{what} must be HOST:PORT with a port in {lowest}..65535, got {address!r}"
        )
    return str(host), int(port)
