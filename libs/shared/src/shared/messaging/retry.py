"""How often and how far apart a failing message is tried again before it is dead-lettered."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 5
    first_backoff_seconds: float = 0.1
    max_backoff_seconds: float = 5.0
    # Failures of a dependency, not of the message (its database is down, say): retried with
    # backoff for as long as they last, never counted against max_attempts — an outage must
    # not dead-letter every message that happened to be in flight.
    transient: tuple[type[BaseException], ...] = ()

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if not 0 < self.first_backoff_seconds <= self.max_backoff_seconds:
            raise ValueError("need 0 < first_backoff_seconds <= max_backoff_seconds")

    def backoff_seconds(self, failed_attempts: int) -> float:
        """Exponential, with jitter so that messages failing together do not retry in lockstep."""
        ceiling = min(self.max_backoff_seconds, self.first_backoff_seconds * 2 ** (failed_attempts - 1))
        return random.uniform(ceiling / 2, ceiling)  # noqa: S311 - spreading load, not security
