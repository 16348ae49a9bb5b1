"""Load generators: closed loop (as fast as answers come) and open loop (a fixed arrival rate).

Open loop is what a public API sees: customers do not wait for each other. Each request's
latency is measured from the moment it was *scheduled*, so a server that falls behind
shows it in the latency instead of quietly lowering the rate (no coordinated omission).
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


async def open_loop(call: Call, *, rate: float, seconds: float, max_in_flight: int = 2000) -> Outcome:
    """Start ``rate`` calls per second for ``seconds``, each on schedule, however slow the answers."""
    outcome = Outcome()
    total = int(rate * seconds)
    began = time.perf_counter()
    in_flight: set[asyncio.Task[None]] = set()
    for index in range(total):
        scheduled = began + index / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)  # the arrival schedule itself, not a wait for a condition
        if len(in_flight) >= max_in_flight:
            outcome.fail("load generator: too many requests in flight")
            continue
        task = asyncio.create_task(_timed(call, index, scheduled, outcome))
        in_flight.add(task)
        task.add_done_callback(in_flight.discard)
    await asyncio.gather(*in_flight)
    outcome.seconds = time.perf_counter() - began
    return outcome


def percentile(values: list[float], fraction: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]
