"""Helpers for the tests against a real edge on the test's own event loop."""

from __future__ import annotations

from typing import Any

from secfepas_sdk.camera.client import RetryPolicy
from secfepas_sdk.edge.registry import ModelRegistry
from secfepas_sdk.edge.server import Server

ONE_TRY = RetryPolicy(attempts=1)
"""A camera that gives up after its first failure (the edge's answer is the test)."""


def running(
    settings: Any, registry: ModelRegistry | None = None, *, grace_s: float = 5.0
) -> Server:
    """An edge for ``async with``: started on entry, stopped with ``grace_s`` on exit."""
    return Server(settings, registry=registry, grace_s=grace_s)
