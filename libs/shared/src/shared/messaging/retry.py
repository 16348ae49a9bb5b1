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
    # An outage is waited out by trying again this often at most, however long it lasts: its
    # end must be noticed within a couple of seconds (at the 30 s of a message's own backoff,
    # a minute-long outage left the pipeline idle for up to half a minute after it healed).
    # One try costs one failed connection attempt per waiting batch, bounded by the prefetch.
    max_outage_backoff_seconds: float = 2.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if not 0 < self.first_backoff_seconds <= self.max_backoff_seconds:
            raise ValueError("need 0 < first_backoff_seconds <= max_backoff_seconds")
        if self.max_outage_backoff_seconds <= 0:
            raise ValueError("max_outage_backoff_seconds must be positive")

    def backoff_seconds(self, failed_attempts: int, *, outage: bool = False) -> float:
        """Exponential, with jitter so that messages failing together do not retry in lockstep;
        capped lower while waiting out an outage (``outage``: the failures were transient)."""
        cap = min(self.max_backoff_seconds, self.max_outage_backoff_seconds) if outage else self.max_backoff_seconds
        ceiling = min(cap, self.first_backoff_seconds * 2 ** (failed_attempts - 1))
        return random.uniform(ceiling / 2, ceiling)  # noqa: S311 - spreading load, not security
