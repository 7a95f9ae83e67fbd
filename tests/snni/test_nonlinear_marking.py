"""The non-linear suite's slow marking (tests/snni/nonlinear/conftest.py) marks
what it means to: every test of the default OT backend (DEFAULT_EXTENSION) and the
one-session tests of the other fast one stay in the default suite; that one's
hypothesis tests and all of IKNP leave it. (Its suffixes once matched no module, so
every backend's hypothesis tests ran by default.)"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from secfepas_sdk.snni.ot.extension import DEFAULT_EXTENSION

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


def test_default_suite_runs_the_default_backend_and_the_others_one_session_tests() -> None:
    other = next(b for b in ("softspoken", "ferret") if b != DEFAULT_EXTENSION)
    names = HYPOTHESIS + ONE_SESSION
    assert _collected("not slow") == {f"{n}[{DEFAULT_EXTENSION}]" for n in names} | {
        f"{n}[{other}]" for n in ONE_SESSION
    }


def test_slow_suite_runs_the_other_backends_hypothesis_tests_and_iknp() -> None:
    other = next(b for b in ("softspoken", "ferret") if b != DEFAULT_EXTENSION)
    assert _collected("slow") == {f"{n}[{other}]" for n in HYPOTHESIS} | {
        f"{n}[iknp]" for n in HYPOTHESIS + ONE_SESSION
    }
