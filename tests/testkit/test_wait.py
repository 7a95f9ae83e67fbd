"""testkit.wait.wait_until: returns the condition's value, fails by name at the deadline."""

from __future__ import annotations

import itertools
import time

import pytest

from testkit.wait import WaitTimeout, wait_until


def test_returns_the_first_truthy_value() -> None:
    calls = itertools.count()
    assert wait_until(lambda: next(calls) >= 3 and "ready", 5, interval=0.001) == "ready"


def test_times_out_with_what_it_waited_for() -> None:
    start = time.monotonic()
    with pytest.raises(WaitTimeout, match=r"after 0\.05 s waiting for the broker") as info:
        wait_until(lambda: False, 0.05, interval=0.01, what="the broker")
    assert time.monotonic() - start >= 0.05
    assert isinstance(info.value, AssertionError)  # a failed test, not an error


def test_checks_once_more_at_the_deadline() -> None:
    calls = []

    def late() -> bool:
        calls.append(time.monotonic())
        return len(calls) >= 2

    # One check, a sleep cut short by the deadline, then the last check succeeds.
    assert wait_until(late, 0.02, interval=10.0) is True
    assert len(calls) == 2


def test_an_exception_in_the_predicate_ends_the_wait() -> None:
    def dead() -> bool:
        raise AssertionError("the process exited")

    with pytest.raises(AssertionError, match="exited"):
        wait_until(dead, 60)


def test_refuses_a_bad_interval() -> None:
    with pytest.raises(ValueError):
        wait_until(lambda: True, 1, interval=0)
