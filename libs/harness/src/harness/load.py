"""The open-loop load generator: requests at a fixed arrival rate, every attempt kept.

Open loop is what a public API sees: customers do not wait for each other, so a slow or
dead server does not slow the arrivals. Each request's latency is measured from the moment
it was *scheduled*, so a server that falls behind shows it in the latency instead of quietly
lowering the rate (no coordinated omission). Every attempt is kept with how it ended:
answered (and how), or not at all (and why). `make bench` and the fault suite both use it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes


@dataclass(frozen=True)
class Attempt:
    """One request, as its client saw it."""

    index: int
    scheduled: float  # seconds from the run's start
    latency_ms: float  # from when it was scheduled, not sent: falling behind shows here
    status: int | None  # None: no answer at all
    error: str | None  # why there was no answer
    retry_after: str | None
    body: bytes

    @property
    def outcome(self) -> str:
        """ "HTTP 201", "HTTP 503", ..., or the client's error ("TimeoutError")."""
        return f"HTTP {self.status}" if self.status is not None else str(self.error)


@dataclass
class Run:
    attempts: list[Attempt] = field(default_factory=list)
    seconds: float = 0.0

    def answered(self, *statuses: int) -> list[Attempt]:
        return [attempt for attempt in self.attempts if attempt.status in statuses]

    def by_outcome(self) -> dict[str, int]:
        """How many attempts ended each way: "HTTP 201", "HTTP 503", ..., or the client's error."""
        counts: dict[str, int] = {}
        for attempt in self.attempts:
            counts[attempt.outcome] = counts.get(attempt.outcome, 0) + 1
        return dict(sorted(counts.items()))


# One request of the system under test: the answer, or an exception for no answer.
Send = Callable[[int], Awaitable[Answer]]

# How often the arrival loop wakes at most: requests due meanwhile are started together, on
# their schedule still (latency counts from it), for a generator that costs little at any rate.
_TICK_SECONDS = 0.002


async def open_loop(send: Send, *, rate: float, seconds: float) -> Run:
    """``rate`` requests per second for ``seconds``, each on schedule, however slow the answers."""
    generator = _Generator(send, rate, total=int(rate * seconds))
    await generator.arrivals()
    await generator.finish()
    return generator.run


@asynccontextmanager
async def running_open_loop(send: Send, *, rate: float) -> AsyncIterator[Run]:
    """Requests at ``rate`` per second until the block ends; the run fills as answers come.

    On leaving, requests already sent get their answers: an acknowledgement is never dropped.
    """
    generator = _Generator(send, rate, total=None)
    arrivals = asyncio.create_task(generator.arrivals())
    try:
        yield generator.run
    finally:
        arrivals.cancel()
        await asyncio.gather(arrivals, return_exceptions=True)
        await generator.finish()


class _Generator:
    def __init__(self, send: Send, rate: float, *, total: int | None) -> None:
        self.run = Run()
        self._send, self._rate, self._total = send, rate, total
        self._loop = asyncio.get_running_loop()
        self._began = self._loop.time()
        self._in_flight: set[asyncio.Task[None]] = set()

    async def arrivals(self) -> None:
        index, total = 0, self._total
        while total is None or index < total:
            now = self._loop.time()
            while (total is None or index < total) and self._due(index) <= now:
                task = asyncio.create_task(self._attempt(index, self._due(index)))
                self._in_flight.add(task)
                task.add_done_callback(self._in_flight.discard)
                index += 1
            if total is None or index < total:
                # The arrival schedule itself, not a wait for a condition.
                await asyncio.sleep(max(self._due(index) - self._loop.time(), _TICK_SECONDS))

    async def finish(self) -> None:
        await asyncio.gather(*self._in_flight)
        self.run.seconds = self._loop.time() - self._began

    def _due(self, index: int) -> float:
        return self._began + index / self._rate

    async def _attempt(self, index: int, scheduled: float) -> None:
        status, error, retry_after, body = None, None, None, b""
        try:
            answer = await self._send(index)
        except Exception as failure:  # noqa: BLE001 - every failure is an outcome, by kind
            error = type(failure).__name__
        else:
            status, retry_after, body = answer.status, answer.headers.get("retry-after"), answer.body
        latency_ms = (self._loop.time() - scheduled) * 1000
        self.run.attempts.append(Attempt(index, scheduled - self._began, latency_ms, status, error, retry_after, body))
