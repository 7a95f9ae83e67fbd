"""The console script must answer --help and --version with no extras."""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Iterator

import pytest

from secfepas_sdk import __version__
from secfepas_sdk.cli.main import build_parser, main


def test_version_flag(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"secfepas {__version__}"


def test_help_lists_commands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    assert "secfepas" in capsys.readouterr().out


def test_help_imports_no_heavy_backend() -> None:
    """--help must work without the extras: it may not import them."""
    code = (
        "import sys\n"
        "from secfepas_sdk.cli.main import build_parser\n"
        "build_parser()\n"
        "heavy = {'cv2', 'onnxruntime', 'tenseal', 'onnx', 'paho', 'fhir', 'torch'}\n"
        "loaded = sorted(heavy & {m.split('.')[0] for m in sys.modules})\n"
        "print(','.join(loaded))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout.strip()
    assert out == ""


def _options(parser: argparse.ArgumentParser, name: str) -> Iterator[tuple[str, argparse.Action]]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub_name, sub in action.choices.items():
                yield from _options(sub, f"{name} {sub_name}")
        elif action.option_strings and action.dest not in ("help", "version"):
            yield name, action


def test_every_option_has_help_and_shows_its_default() -> None:
    parser = build_parser()
    flags = (argparse._StoreTrueAction, argparse._CountAction)
    checked = 0
    for command, action in _options(parser, "secfepas"):
        where = f"{command} {action.option_strings[0]}"
        assert action.help, f"{where} has no help text"
        if action.required or isinstance(action, flags):
            continue
        formatter = parser._get_formatter()
        shown = formatter._expand_help(action) if action.help else ""
        assert "default" in shown, f"{where} shows no default: {shown!r}"
        checked += 1
    assert checked > 40


def test_inspect_help_states_the_real_selection_defaults() -> None:
    from secfepas_sdk.camera.selection import DEFAULT_PERIOD_S, DEFAULT_REDUNDANCY_THRESHOLD

    helps = {
        a.option_strings[0]: a.help or ""
        for command, a in _options(build_parser(), "secfepas")
        if command == "secfepas camera inspect"
    }
    assert f"default: {DEFAULT_PERIOD_S}" in helps["--period"]
    assert f"default: {DEFAULT_REDUNDANCY_THRESHOLD}" in helps["--threshold"]


@pytest.mark.parametrize(
    ("argv", "level"),
    [
        (["-v", "certs", "init", "DIR"], 1),
        (["certs", "-v", "init", "DIR"], 1),
        (["certs", "init", "DIR", "-vv"], 2),
        (["certs", "init", "DIR"], 0),
    ],
)
def test_verbose_works_before_and_after_the_command(argv: list[str], level: int) -> None:
    args = build_parser().parse_args(argv)
    assert getattr(args, "verbose", 0) == level
