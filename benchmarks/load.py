"""Load generators: closed loop (as fast as answers come) and open loop (a fixed arrival rate).

Open loop is what a public API sees: customers do not wait for each other. Each request's
latency is measured from the moment it was *scheduled*, so a server that falls behind
shows it in the latency instead of quietly lowering the rate (no coordinated omission).
Every attempt of an open-loop run is kept with how it ended: answered (and how), or not.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from .http import Answer


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


@dataclass(frozen=True)
class Attempt:
    """One request of an open-loop run, as its client saw it."""

    scheduled: float  # seconds from the run's start
    latency_ms: float  # from when it was scheduled, not sent: falling behind shows here
    status: int | None  # None: no answer at all
    error: str | None  # why there was no answer
    retry_after: str | None
    body: bytes


@dataclass
class Run:
    attempts: list[Attempt] = field(default_factory=list)
    seconds: float = 0.0

    def answered(self, *statuses: int) -> list[Attempt]:
        return [attempt for attempt in self.attempts if attempt.status in statuses]

    def by_outcome(self) -> dict[str, int]:
        """How many attempts ended each way: "201", "503", ..., or the client's error."""
        counts: dict[str, int] = {}
        for attempt in self.attempts:
            key = str(attempt.status) if attempt.status is not None else str(attempt.error)
            counts[key] = counts.get(key, 0) + 1
        return dict(sorted(counts.items()))


# One request of the system under test: the answer, or an exception for no answer.
Send = Callable[[int], Awaitable[Answer]]

# How often the arrival loop wakes at most: requests due meanwhile are started together, on
# their schedule still (latency counts from it), for a generator that costs little at any rate.
_TICK_SECONDS = 0.002


async def open_loop(send: Send, *, rate: float, seconds: float) -> Run:
    """Start ``rate`` requests per second for ``seconds``, each on schedule, however slow the answers."""
    run = Run()
    total = int(rate * seconds)
    loop = asyncio.get_running_loop()
    began = loop.time()
    in_flight: set[asyncio.Task[None]] = set()

    async def attempt(index: int, scheduled: float) -> None:
        try:
            answer = await send(index)
        except Exception as error:  # noqa: BLE001 - every failure is an outcome, by kind
            run.attempts.append(
                Attempt(scheduled - began, (loop.time() - scheduled) * 1000, None, type(error).__name__, None, b"")
            )
            return
        run.attempts.append(
            Attempt(
                scheduled - began,
                (loop.time() - scheduled) * 1000,
                answer.status,
                None,
                answer.headers.get("retry-after"),
                answer.body,
            )
        )

    index = 0
    while index < total:
        now = loop.time()
        while index < total and began + index / rate <= now:
            task = asyncio.create_task(attempt(index, began + index / rate))
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)
            index += 1
        if index < total:
            # The arrival schedule itself, not a wait for a condition.
            await asyncio.sleep(max(began + index / rate - loop.time(), _TICK_SECONDS))
    await asyncio.gather(*in_flight)
    run.seconds = loop.time() - began
    return run


def percentile(values: list[float], fraction: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]
