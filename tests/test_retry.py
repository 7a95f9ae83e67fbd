"""One back-off policy serves the camera client and the alert dispatcher, each with
the behaviour it had."""

from __future__ import annotations

import pytest

from secfepas_sdk.retry import EDGE_RECONNECT, RetryPolicy


def test_both_users_share_the_one_class() -> None:
    from secfepas_sdk.alerts import RetryPolicy as AlertRetry
    from secfepas_sdk.camera.client import RetryPolicy as CameraRetry

    assert AlertRetry is CameraRetry is RetryPolicy


@pytest.mark.parametrize("attempt", [1, 2, 3, 5, 9, 500])
def test_the_camera_default_doubles_to_15_s_with_20_percent_jitter(attempt: int) -> None:
    base = min(15.0, 0.5 * 2 ** (attempt - 1))
    delays = [EDGE_RECONNECT.delay(attempt) for _ in range(200)]
    assert all(0.8 * base - 1e-9 <= d <= 1.2 * base + 1e-9 for d in delays)
    assert min(delays) < base < max(delays)  # jitter both ways
    assert [EDGE_RECONNECT.allows(n) for n in range(1, 7)] == [True] * 5 + [False]


@pytest.mark.parametrize("attempt", [1, 2, 8, 500])
def test_the_default_is_the_dispatchers_up_to_60_s_never_early(attempt: int) -> None:
    policy = RetryPolicy()
    base = min(60.0, 0.5 * 2 ** (attempt - 1))
    delays = [policy.delay(attempt) for _ in range(200)]
    assert all(base - 1e-9 <= d <= 1.1 * base + 1e-9 for d in delays)
    assert policy.allows(10**6)  # retries until delivered


@pytest.mark.parametrize(
    "kwargs",
    [
        {"initial_s": 0},
        {"initial_s": float("nan")},
        {"multiplier": 0.5},
        {"max_s": 0.1},
        {"jitter_down": 1.5},
        {"jitter_up": -0.1},
        {"attempts": 0},
    ],
)
def test_bad_settings_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]
