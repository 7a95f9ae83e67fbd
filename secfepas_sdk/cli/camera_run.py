"""`secfepas camera run`: registered under the `camera` command group."""

from __future__ import annotations

import argparse
from typing import Any


def register(camera_subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add `camera run`. Not registered until the secure client lands."""
    del camera_subparsers
