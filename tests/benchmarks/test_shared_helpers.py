"""Benchmarks take their loopback ports from the test kit (tests/testkit/ports.py),
as edge_load, fuzz_edge and soak already take its process helpers: no script keeps
its own copy of the helper."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def _defined_functions(script: Path) -> set[str]:
    tree = ast.parse(script.read_text(), filename=str(script))
    return {node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)}


def test_no_benchmark_defines_its_own_free_port() -> None:
    owners = [
        script.name
        for script in sorted(BENCHMARKS.glob("*.py"))
        if _defined_functions(script) & {"_free_port", "free_port"}
    ]
    assert owners == []


@pytest.mark.parametrize("script", ["edge_load.py", "alerts_delivery.py"])
def test_benchmark_finds_the_test_kit_when_run_as_a_script(script: str) -> None:
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd="/",
    )
    assert done.returncode == 0, done.stderr
    assert "usage:" in done.stdout
