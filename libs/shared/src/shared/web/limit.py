"""How many requests a process works on at once: a fixed bound, or one that follows latency.

A fixed bound only bites once the requests in flight pile up, and on a machine whose CPU is
shared they pile up late: by then every process is starved, and even a refusal waits its
turn. ``AdaptiveLimit`` watches how long the requests it admitted took (AIMD, as TCP does
with its window): when their median over a short window passes the target, it admits a
quarter fewer; while it is the limit that refuses and answers come quickly, a tenth more,
back up to the maximum. Admitting less is what keeps refusals fast past capacity, and the
work admitted within its target.

It cuts only a bound that the window's requests came near: slow answers with few requests
in flight are not this process admitting too much (a neighbour took the CPU for a moment, a
dependency restarted), and a bound cut far below them would refuse the next requests of a
light load for nothing.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

from prometheus_client import Gauge

LIMIT = Gauge("dozen_http_server_in_flight_limit", "Requests admitted at once now (the in-flight bound).")

# The shortest look at latency before the bound moves: long enough for a median to mean
# something at a few hundred requests a second, short enough to follow a surge.
WINDOW_SECONDS = 0.1
DECREASE = 0.75
INCREASE = 0.1


class FixedLimit:
    def __init__(self, maximum: int) -> None:
        if maximum < 1:
            raise ValueError("the in-flight bound must be at least 1")
        self.value = maximum
        LIMIT.set(maximum)

    def admitted(self, in_flight: int) -> None:
        """A request admitted with ``in_flight`` requests in flight, itself included."""

    def finished(self, seconds: float) -> None:
        """An admitted request answered after ``seconds``."""


class AdaptiveLimit(FixedLimit):
    def __init__(
        self,
        maximum: int,
        *,
        target_seconds: float,
        minimum: int = 4,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(maximum)
        if minimum < 1:
            raise ValueError("the in-flight bound's minimum must be at least 1")
        self._maximum = maximum
        self._minimum = min(minimum, maximum)
        self._target = target_seconds
        self._clock = clock
        self._window_began = clock()
        self._durations: list[float] = []
        self._limited = False
        self._peak = 0

    def admitted(self, in_flight: int) -> None:
        self._peak = max(self._peak, in_flight)
        if in_flight >= self.value:
            self._limited = True

    def finished(self, seconds: float) -> None:
        self._durations.append(seconds)
        now = self._clock()
        if now - self._window_began < WINDOW_SECONDS:
            return
        cut = max(self._minimum, int(self.value * DECREASE))
        if statistics.median(self._durations) > self._target:
            if self._peak > cut:
                self.value = cut
        elif self._limited:
            self.value = min(self._maximum, self.value + max(1, int(self.value * INCREASE)))
        LIMIT.set(self.value)
        self._window_began, self._durations, self._limited, self._peak = now, [], False, 0
