"""Entry point: build the parser from the subcommand modules and dispatch."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from secfepas_sdk import __version__
from secfepas_sdk.errors import SecfepasError

# Order is the order shown in --help.
_COMMAND_MODULES = ("demo", "camera", "edge", "snni", "model", "certs", "bench")


class HelpFormatter(argparse.HelpFormatter):
    """Every option's help ends with its default, unless the text already says it.

    (argparse.ArgumentDefaultsHelpFormatter also prints "default: None" and "False".)
    """

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        if (
            not action.option_strings
            or "default" in text
            or default is None
            or default is False
            or default == argparse.SUPPRESS
            or default == []
        ):
            return text
        if isinstance(default, list):  # nargs: show it as it is typed
            return f"{text} (default: {' '.join(str(v) for v in default)})"
        return f"{text} (default: %(default)s)"


class Parser(argparse.ArgumentParser):
    """The parser of every (sub)command: our help format, and ``-v`` after any command."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)
        self.add_argument(
            "-v",
            "--verbose",
            action="count",
            default=argparse.SUPPRESS,
            help="more log output (repeatable; also before the command)",
        )

    def error(self, message: str) -> NoReturn:
        """A usage mistake: one line like every other failure (exit status 2, as argparse).

        The line starts ``secfepas: error:`` once; a subcommand's mistake names the
        subcommand after it (``model import: ...``), the top level's names nothing.
        """
        command = self.prog.partition(" ")[2]
        where = f"{command}: " if command else ""
        self.exit(2, f"secfepas: error: {where}{message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="secfepas",
        description=(
            "Privacy-preserving pain assessment: a camera and an edge server run "
            "secure two-party CNN inference."
        ),
    )
    parser.add_argument("--version", action="version", version=f"secfepas {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _COMMAND_MODULES:
        module = importlib.import_module(f"secfepas_sdk.cli.{name}")
        module.register(sub)
    return parser


def _configure_logging(verbosity: int) -> None:
    if verbosity < 2:  # FFmpeg inside OpenCV prints its own lines on a bad file
        os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
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
    _configure_logging(getattr(args, "verbose", 0))
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
