"""The closed-loop generator of the raw limits (as fast as answers come), and percentiles.

The pipeline's load is open loop, as a public API sees it: ``harness.load``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field


@dataclass
class Outcome:
    latencies_ms: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    results: list[object] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> int:
        return len(self.latencies_ms)

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    def fail(self, reason: str) -> None:
        self.errors[reason] = self.errors.get(reason, 0) + 1


# One call of the system under test: returns something to keep, or raises to count an error.
Call = Callable[[int], Awaitable[object]]


async def _timed(call: Call, index: int, started: float, outcome: Outcome) -> None:
    try:
        result = await call(index)
    except Exception as error:  # noqa: BLE001 - every failure is counted, by kind
        outcome.fail(type(error).__name__ + (f": {error}" if str(error) else ""))
        return
    outcome.latencies_ms.append((time.perf_counter() - started) * 1000)
    outcome.results.append(result)


async def closed_loop(call: Call, *, concurrency: int, seconds: float) -> Outcome:
    outcome = Outcome()
    deadline = time.perf_counter() + seconds
    counter = iter(range(10**9))

    async def worker() -> None:
        while time.perf_counter() < deadline:
            await _timed(call, next(counter), time.perf_counter(), outcome)

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    outcome.seconds = time.perf_counter() - began
    return outcome


def percentile(values: list[float], fraction: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]
