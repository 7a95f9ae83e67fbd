"""Edge side: the TLS server that holds the secret model weights and runs the
server half of secure inference for many cameras.

``from secfepas_sdk.edge import Server, EdgeSettings, load_settings,
stop_on_signals`` (imported lazily: they need the ``edge`` extra)::

    async with Server(load_settings()) as server:
        stop_on_signals(server)  # SIGTERM / SIGINT: graceful stop
        await server.serve_forever()
"""

from __future__ import annotations

from typing import Any

__all__ = ["EdgeSettings", "Server", "load_settings", "stop_on_signals"]


def __getattr__(name: str) -> Any:
    if name in ("Server", "stop_on_signals"):
        from secfepas_sdk.edge import server

        return getattr(server, name)
    if name in ("EdgeSettings", "load_settings"):
        from secfepas_sdk._extras import require

        require("pydantic_settings", "edge")
        from secfepas_sdk.edge import settings

        return getattr(settings, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
