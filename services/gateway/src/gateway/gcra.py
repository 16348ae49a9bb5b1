"""GCRA in this process's memory: the rate limit that holds while Redis does not answer.

The same algorithm as the Lua script in gateway.ratelimit, on this process's clock: each key
may make ``burst`` requests at once and ``per_second`` on average. Kept per replica, so while
Redis is away a customer may get up to that rate from each replica; that is still a bound,
where failing open was none. Memory is bounded too: past ``max_keys`` the key seen longest
ago is forgotten (it starts again with a full burst, as after a restart).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

# Enough for every customer active within a few seconds at thousands of requests a second.
MAX_KEYS = 100_000


class LocalGcra:
    def __init__(
        self,
        *,
        per_second: float,
        burst: int,
        max_keys: int = MAX_KEYS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._interval = 1 / per_second
        self._tolerance = self._interval * (burst - 1)
        self._max_keys = max_keys
        self._clock = clock
        # Per key, the theoretical arrival time of its next request; oldest first.
        self._arrivals: OrderedDict[str, float] = OrderedDict()

    def wait_seconds(self, key: str) -> float:
        """0 when ``key`` may go ahead now (and it is counted), else the seconds until it may."""
        now = self._clock()
        arrival = max(self._arrivals.pop(key, now), now)
        if arrival - now > self._tolerance:
            self._arrivals[key] = arrival
            return arrival - now - self._tolerance
        self._arrivals[key] = arrival + self._interval
        if len(self._arrivals) > self._max_keys:
            self._arrivals.popitem(last=False)
        return 0.0
