"""Logs never carry anything derived from pixels: a check over every log call in
the package (the arguments' names, not the format strings), so a new
``log.info("face found (score %.3f)", face.score)`` fails here."""

from __future__ import annotations

import ast
from pathlib import Path

import secfepas_sdk

_LOG_METHODS = {"debug", "info", "warning", "error", "exception", "critical", "log"}
_LOGGERS = {"log", "_log", "logger", "_logger", "logging"}
# Names whose values are pixels or come from them (detections, crops, tensors,
# results) or are secret (shares, keys).
_PIXEL_DERIVED = {
    "box",
    "crop",
    "face",
    "faces",
    "frame_pixels",
    "level",
    "logits",
    "pixels",
    "probabilities",
    "score",
    "share",
    "shares",
    "tensor",
    "secret_key",
}


def _names(node: ast.AST) -> set[str]:
    found = set()
    for sub in ast.walk(node):
        if isinstance(sub, ast.Name):
            found.add(sub.id)
        elif isinstance(sub, ast.Attribute):
            found.add(sub.attr)
    return found


def _offending_log_calls(source: str) -> list[tuple[int, set[str]]]:
    bad = []
    for node in ast.walk(ast.parse(source)):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        func = node.func
        if func.attr not in _LOG_METHODS or not isinstance(func.value, ast.Name):
            continue
        if func.value.id not in _LOGGERS:
            continue
        hits = set().union(*(_names(a) for a in node.args[1:]), set())
        hits |= set().union(*(_names(k.value) for k in node.keywords), set())
        if hits & _PIXEL_DERIVED:
            bad.append((node.lineno, hits & _PIXEL_DERIVED))
    return bad


def test_the_checker_catches_a_detection_score() -> None:
    assert _offending_log_calls('log.info("face found (score %.3f)", faces[0].score)')
    assert not _offending_log_calls('log.info("session %s", session_id)')


def test_no_log_call_in_the_package_takes_a_pixel_derived_value() -> None:
    root = Path(secfepas_sdk.__file__).parent
    offences = {
        f"{path.relative_to(root)}:{line}": names
        for path in sorted(root.rglob("*.py"))
        for line, names in _offending_log_calls(path.read_text(encoding="utf-8"))
    }
    assert not offences, offences
