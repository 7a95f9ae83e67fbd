"""A minimal third-party alert sink: append each alert as one JSON line to a file.

Use it as ``--sink jsonl:///var/log/secfepas/alerts.jsonl``.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import unquote, urlsplit

from secfepas_sdk.alerts import Alert, SinkContext
from secfepas_sdk.errors import ConfigError, TransientSinkError

__all__ = ["JsonlSink", "jsonl_sink_factory"]


class JsonlSink:
    """Satisfies the ``AlertSink`` protocol: ``name``, ``deliver(alert)``, ``close()``."""

    def __init__(self, path: Path) -> None:
        self._path = path

    @property
    def name(self) -> str:
        # Stable across restarts: the outbox keys pending deliveries on it.
        return f"jsonl://{self._path}"

    def deliver(self, alert: Alert) -> None:
        # Return only once the alert is safe; raise TransientSinkError to be retried
        # later, PermanentSinkError to dead-letter the alert.
        try:
            with self._path.open("a", encoding="utf-8") as out:
                out.write(alert.to_json() + "\n")
                out.flush()
                os.fsync(out.fileno())
        except OSError as exc:
            raise TransientSinkError(f"cannot append to {self._path}: {exc}") from exc

    def close(self) -> None:
        return None


def jsonl_sink_factory(uri: str, context: SinkContext) -> JsonlSink:
    """The entry point: check the URI now, so that a bad one fails at load time."""
    del context  # this sink does not need the camera id
    parts = urlsplit(uri)
    path = Path(unquote(parts.path))
    if parts.netloc or parts.query or not path.is_absolute():
        raise ConfigError(f"use jsonl:///absolute/path.jsonl, got {uri!r}")
    if not path.parent.is_dir():
        raise ConfigError(f"directory {path.parent} does not exist")
    return JsonlSink(path)
