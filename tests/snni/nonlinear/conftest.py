"""Every non-linear test runs on each OT backend: the protocols must not care."""

from __future__ import annotations

import pytest
from hypothesis import is_hypothesis_test

from secfepas_sdk.snni.ot import extension as extension_mod
from secfepas_sdk.snni.ot import lpn

BACKENDS = ("softspoken", "ferret", "iknp")
# Hypothesis and scale tests set up many sessions: on a backend other than the
# library default (extension.DEFAULT_EXTENSION) they run in the slow suite (-m slow),
# its other tests (one session each, such as the round counts) in the default one;
# IKNP runs only in the slow suite. The default backend runs everything by default.
# tests/snni/test_nonlinear_marking.py holds the default suite to this.
DEFAULT_BACKEND = extension_mod.DEFAULT_EXTENSION  # read before any fixture patches it
_SCALE_MODULES = frozenset({"test_engine_scale_slow"})


def _heavy(item: pytest.Item) -> bool:
    """A hypothesis test (many sessions per test) or one of the scale module."""
    return item.path.stem in _SCALE_MODULES or is_hypothesis_test(getattr(item, "obj", None))


@pytest.fixture(autouse=True, params=BACKENDS)
def ot_backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The OT extension the engines and sessions of this test use by default."""
    backend = str(request.param)
    monkeypatch.setattr(extension_mod, "DEFAULT_EXTENSION", backend)
    # Ferret's small (also 128-bit) LPN set for the main iterations: 0.6 M COTs
    # each instead of 10 M, so the tests cross iterations often and run fast.
    # tests/snni/ot/test_ferret.py runs the real main set.
    monkeypatch.setattr(extension_mod, "FERRET_MAIN", lpn.SETUP)
    return backend


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        callspec = getattr(item, "callspec", None)
        backend = callspec.params.get("ot_backend") if callspec is not None else None
        if backend is None or backend == DEFAULT_BACKEND:
            continue
        if backend == "iknp" or _heavy(item):
            item.add_marker(pytest.mark.slow)
