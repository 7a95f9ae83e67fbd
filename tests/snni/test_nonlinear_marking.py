"""The non-linear suite's slow marking (tests/snni/nonlinear/conftest.py) marks
what it means to: Ferret's hypothesis tests and all of IKNP leave the default
suite, and every SoftSpokenOT test and Ferret's one-session tests stay in it.
(Its suffixes once matched no module, so Ferret's hypothesis tests ran by default.)"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
COLLECT = [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider"]
PROPERTIES = "tests/snni/nonlinear/test_engine_properties.py"
HYPOTHESIS = (
    "test_relu_and_drelu",
    "test_truncate",
    "test_relu_truncate",
    "test_bounded_drelu_and_relu",
)
ONE_SESSION = ("test_rounds_do_not_grow_with_size", "test_bound_cuts_traffic")


def _collected(marker: str) -> set[str]:
    done = subprocess.run(
        [*COLLECT, "-m", marker, PROPERTIES],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return {line.split("::")[1] for line in done.stdout.splitlines() if "::" in line}


def test_default_suite_runs_softspoken_and_ferrets_one_session_tests() -> None:
    names = HYPOTHESIS + ONE_SESSION
    assert _collected("not slow") == {f"{n}[softspoken]" for n in names} | {
        f"{n}[ferret]" for n in ONE_SESSION
    }


def test_slow_suite_runs_ferrets_hypothesis_tests_and_iknp() -> None:
    assert _collected("slow") == {f"{n}[ferret]" for n in HYPOTHESIS} | {
        f"{n}[iknp]" for n in HYPOTHESIS + ONE_SESSION
    }
