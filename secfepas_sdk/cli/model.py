"""`secfepas model`: subcommands (registered by secfepas_sdk.cli.main)."""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add this command's parser. Nothing registered yet for `model`."""
    del subparsers
