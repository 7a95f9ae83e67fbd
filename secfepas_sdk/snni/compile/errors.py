"""The compiler's one error type."""

from __future__ import annotations

from secfepas_sdk.errors import SnniError


class UnsupportedModelError(SnniError):
    """The model uses ops (or op settings) the secure engine cannot run."""
