"""Optional numba kernels, checked once per process against their numpy forms.

Why: a kernel that is missing (no numba: the camera may lack it) or that computes
anything other than its numpy form must never be used, since both parties must
derive the same bits; so each is probed once, on first use or at warm-up, and the
numpy form runs when the probe says no.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

__all__ = ["checked_kernel"]


def checked_kernel(probe: Callable[[], T | None]) -> Callable[[], T | None]:
    """Memoise ``probe``, which imports a kernel, checks it on small inputs against
    numpy and returns it (or None); an exception (no numba, a kernel that fails)
    counts as None. The answer stands for the process."""

    @functools.wraps(probe)
    @functools.cache
    def get() -> T | None:
        try:
            return probe()
        except Exception:
            return None

    return get
