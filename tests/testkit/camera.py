"""A real edge on a background event loop, for the client and pipeline tests."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from secfepas_sdk.certs import Pki


class BackgroundEdge:
    """A real edge Server running on its own event loop in a thread."""

    def __init__(self, settings: Any) -> None:
        from secfepas_sdk.edge.server import Server

        self.server = Server(settings)
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self) -> BackgroundEdge:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.server.start(), self.loop).result(60)
        return self

    @property
    def address(self) -> tuple[str, int]:
        return self.server.address

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.server.stop(5.0), self.loop).result(60)
        asyncio.run_coroutine_threadsafe(self.loop.shutdown_default_executor(), self.loop).result(
            60
        )
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()  # no event loop may be left for the garbage collector


def demo_edge(pki: Pki, workdir: Path, *, max_sessions: int) -> Iterator[BackgroundEdge]:
    """Run a real edge serving the bundled demo model for as long as the caller iterates."""
    from secfepas_sdk.edge.settings import load_settings
    from secfepas_sdk.models.bundled import demo_model_dir

    settings = load_settings(
        None,
        model_dir=demo_model_dir(workdir / "models"),
        ca=pki.ca_cert,
        cert=pki.edge_cert,
        key=pki.edge_key,
        port=0,
        max_sessions=max_sessions,
        metrics_enabled=False,
    )
    with BackgroundEdge(settings) as running:
        yield running


def edge_started_computing(client: Any) -> asyncio.Event:
    """An event set when the connected ``client`` receives its next DATA frame from the
    edge. The edge sends InferenceEnd only after all its DATA, so once the event is set
    the inference is in flight on both sides: a hook instead of a guessed sleep."""
    from secfepas_sdk.protocol.events import Data

    stream = client._stream
    assert stream is not None, "connect the client first"
    seen = asyncio.Event()
    receive = stream.next_event

    async def next_event(*args: Any, **kwargs: Any) -> Any:
        event = await receive(*args, **kwargs)
        if isinstance(event, Data):
            seen.set()
        return event

    stream.next_event = next_event
    return seen
