"""One back-off policy for everything that retries: the camera reconnecting to an
edge, and the alert dispatcher redelivering to a sink.

Jitter comes from ``secrets`` (never ``random``), so cameras that lost the same
edge do not come back in lock-step.
"""

from __future__ import annotations

import math
import secrets
from dataclasses import dataclass

from secfepas_sdk.errors import InvalidValueError

__all__ = ["EDGE_RECONNECT", "RetryPolicy"]


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """Exponential back-off with jitter.

    Retry ``n`` (1 = after the first failure) waits
    ``min(max_s, initial_s * multiplier**(n - 1))`` times a random factor in
    ``[1 - jitter_down, 1 + jitter_up]``. ``attempts`` bounds the tries in all
    (``None``: until success). The defaults are the alert dispatcher's;
    :data:`EDGE_RECONNECT` is the camera client's.
    """

    initial_s: float = 0.5
    multiplier: float = 2.0
    max_s: float = 60.0
    jitter_down: float = 0.0
    jitter_up: float = 0.1
    attempts: int | None = None

    def __post_init__(self) -> None:
        values = (self.initial_s, self.multiplier, self.max_s, self.jitter_down, self.jitter_up)
        if not all(math.isfinite(v) for v in values):
            raise InvalidValueError("retry settings must be finite")
        if self.initial_s <= 0 or self.multiplier < 1 or self.max_s < self.initial_s:
            raise InvalidValueError("need initial_s > 0, multiplier >= 1 and max_s >= initial_s")
        if not (0 <= self.jitter_down <= 1 and 0 <= self.jitter_up <= 1):
            raise InvalidValueError("jitter_down and jitter_up must be within [0, 1]")
        if self.attempts is not None and self.attempts < 1:
            raise InvalidValueError("attempts must be >= 1 or None")

    def delay(self, attempt: int) -> float:
        """Seconds to wait before retry number ``attempt`` (1-based)."""
        base = min(self.max_s, self.initial_s * self.multiplier ** min(attempt - 1, 64))
        u = secrets.randbelow(1001) / 1000
        return base * (1 - self.jitter_down + (self.jitter_down + self.jitter_up) * u)

    def allows(self, attempt: int) -> bool:
        """May try number ``attempt`` (1-based) happen?"""
        return self.attempts is None or attempt <= self.attempts


EDGE_RECONNECT = RetryPolicy(max_s=15.0, jitter_down=0.2, jitter_up=0.2, attempts=5)
"""The camera's default: five tries, 0.5 s doubling to 15 s, +-20 % jitter."""
