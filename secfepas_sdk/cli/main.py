"""Entry point: build the parser from the subcommand modules and dispatch."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from secfepas_sdk import __version__
from secfepas_sdk.errors import SecfepasError

# Order is the order shown in --help.
_COMMAND_MODULES = ("demo", "camera", "edge", "snni", "model", "certs", "bench")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="secfepas",
        description=(
            "Privacy-preserving pain assessment: a camera and an edge server run "
            "secure two-party CNN inference."
        ),
    )
    parser.add_argument("--version", action="version", version=f"secfepas {__version__}")
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="more log output (repeatable)"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _COMMAND_MODULES:
        module = importlib.import_module(f"secfepas_sdk.cli.{name}")
        module.register(sub)
    return parser


def _configure_logging(verbosity: int) -> None:
    level = logging.WARNING - 10 * min(verbosity, 2)
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    _configure_logging(args.verbose)
    try:
        return int(handler(args) or 0)
    except SecfepasError as exc:
        print(f"secfepas: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("secfepas: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
