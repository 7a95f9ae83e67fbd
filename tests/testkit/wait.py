"""Wait on a real condition with a deadline: the one poll loop the tests share.

A test never sleeps for a guessed time; it names what it waits for and how long
that may take, and fails with that name when the deadline passes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class WaitTimeout(AssertionError):
    """The condition did not hold by the deadline (an AssertionError, so a test fails)."""


def wait_until(
    predicate: Callable[[], T],
    timeout: float,
    interval: float = 0.05,
    what: str = "the condition",
) -> T:
    """Call ``predicate`` every ``interval`` s until it returns a truthy value; return it.

    It is checked once more at the deadline, so a condition that holds by then
    never fails. An exception from ``predicate`` (a process that died, say) ends
    the wait at once. Raises :class:`WaitTimeout` naming ``what``.
    """
    if timeout < 0 or interval <= 0:
        raise ValueError("timeout must be >= 0 and interval > 0")
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        left = deadline - time.monotonic()
        if left <= 0:
            raise WaitTimeout(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(min(interval, left))
