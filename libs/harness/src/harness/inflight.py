"""Work held in flight on purpose, for factor IX: each process type is given work that stays
unfinished — waiting on a PostgreSQL lock the caller holds — until the process has been told
to stop (SIGTERM). Then the lock goes, and the work must still
finish. Dozen batches its work (orders placed in the same turn go in one statement, messages
in one transaction), so the pieces in
flight wait on the lock as one or a few sessions: work is in flight when all of it is inside
the process (its requests in flight, its queue emptied into it) and something waits."""

from __future__ import annotations

import asyncio
import signal
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass

import aiohttp

from harness.api import Customer, Reply
from harness.probes import (
    NOTIFIED,
    RECORDED,
    UNPUBLISHED,
    count_of,
    lock_waiters,
    metric_sum,
    ready_messages,
    table_locked,
)
from harness.procfile import process_types
from harness.stack import Stack
from shared.testing import ServiceProcess, eventually

# Orders held in flight each time: within every pool and prefetch, so all wait at once.
HELD = 5
# A process still running this long after SIGTERM is killed, and its stop judged failed.
EXIT_DEADLINE_SECONDS = 15.0


@dataclass(frozen=True)
class Stop:
    code: int | None  # None: it had to be killed
    seconds: float
    problems: list[str]


def shutdown_begun(process: ServiceProcess) -> bool:
    return process.returncode is not None or any(
        record.get("message") == "shutdown requested" for record in process.records
    )


async def graceful_stop(
    process: ServiceProcess, in_flight: InFlight | None, *, deadline_seconds: float = EXIT_DEADLINE_SECONDS
) -> Stop:
    """SIGTERM, with ``in_flight`` work waiting in the process until it has begun to shut down."""
    if in_flight is not None:
        await eventually(in_flight.started, timeout_seconds=15, description=f"{in_flight.what} in flight")
    began = time.monotonic()
    process.send_signal(signal.SIGTERM)
    if in_flight is not None:
        # The work is let go only once the shutdown is under way, so it is in flight across it.
        try:
            await eventually(lambda: shutdown_begun(process), timeout_seconds=deadline_seconds, description="shutdown")
        finally:
            await in_flight.release()
    try:
        code: int | None = await process.wait(timeout_seconds=max(0.1, deadline_seconds - (time.monotonic() - began)))
    except TimeoutError:
        await process.stop()
        code = None
    seconds = time.monotonic() - began
    return Stop(code, seconds, await in_flight.finished() if in_flight is not None else [])


@dataclass(frozen=True)
class InFlight:
    what: str
    # How many pieces of work are waiting right now (None until all of them are).
    started: Callable[[], Awaitable[int | None]]
    release: Callable[[], Awaitable[None]]
    # After the process exited: what went wrong with the work it had in flight.
    finished: Callable[[], Awaitable[list[str]]]


@asynccontextmanager
async def paused(process: ServiceProcess) -> AsyncIterator[Callable[[], None]]:
    """``process`` stopped (SIGSTOP) until the returned resume is called; never left stopped."""
    process.send_signal(signal.SIGSTOP)
    try:
        yield lambda: process.send_signal(signal.SIGCONT)
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGCONT)


def _waiting(database_url: str, all_inside: Callable[[], Awaitable[bool]]) -> Callable[[], Awaitable[int | None]]:
    async def started() -> int | None:
        return HELD if await lock_waiters(database_url) and await all_inside() else None

    return started


def _requests_inside(port: int) -> Callable[[], Awaitable[bool]]:
    async def inside() -> bool:
        # The scrape that asks is in flight too.
        return await metric_sum(port, "dozen_http_server_requests_in_flight") >= HELD + 1

    return inside


def _queue_emptied(stack: Stack, consumer: str) -> Callable[[], Awaitable[bool]]:
    """Whether the queue of ``consumer`` (a process type) has handed every message to it."""
    env, prefix = stack.processes[consumer].env, process_types()[consumer].service.upper()

    async def inside() -> bool:
        return await ready_messages(env[f"{prefix}_AMQP_URL"], env[f"{prefix}_QUEUE"]) == 0

    return inside


async def _placed(stack: Stack, tokens: list[str]) -> list[str]:
    """``HELD`` orders at once, one per token, through the gateway; their ids."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
        replies = await asyncio.gather(*(Customer(http, stack.gateway_url, token).place() for token in tokens[:HELD]))
    return [reply.order["id"] for reply in replies]


@asynccontextmanager
async def requests_held(stack: Stack, tokens: list[str]) -> AsyncIterator[InFlight]:
    """Orders through the gateway, held at their INSERT: in flight in the gateway and orders web."""
    database_url = stack.orders_database_url
    async with (
        table_locked(database_url, "orders") as release,
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http,
    ):
        customers = [Customer(http, stack.gateway_url, token) for token in tokens[:HELD]]
        answers = [asyncio.create_task(customer.place()) for customer in customers]

        async def finished() -> list[str]:
            replies: list[Reply | BaseException] = await asyncio.gather(*answers, return_exceptions=True)
            statuses = Counter(reply.status if isinstance(reply, Reply) else type(reply).__name__ for reply in replies)
            return [] if statuses == Counter({201: HELD}) else [f"the requests in flight got {dict(statuses)}"]

        yield InFlight(
            f"{HELD} order requests",
            _waiting(database_url, _requests_inside(stack.management_ports["orders-web"])),
            release,
            finished,
        )


@asynccontextmanager
async def batch_held(stack: Stack, tokens: list[str]) -> AsyncIterator[InFlight]:
    """A relay batch held between its publishes and its commit (marking the orders published)."""
    database_url = stack.orders_database_url
    async with paused(stack.processes["orders-relay"]) as resume:
        order_ids = await _placed(stack, tokens)
        async with table_locked(database_url, "orders") as release:
            resume()

            async def started() -> int | None:
                return 1 if await lock_waiters(database_url) else None

            async def finished() -> list[str]:
                left = await count_of(database_url, UNPUBLISHED, order_ids)
                return [f"{left} rows of the batch in flight were rolled back, to go out twice"] if left else []

            yield InFlight(f"a batch of {HELD} published events", started, release, finished)


@asynccontextmanager
async def notifications_held(stack: Stack, tokens: list[str]) -> AsyncIterator[InFlight]:
    """NotificationSent messages held in the worker's handlers, at their UPDATE of the order."""
    async with paused(stack.processes["orders-worker"]) as resume:
        order_ids = await _placed(stack, tokens)

        async def all_emailed() -> bool:
            return await count_of(stack.notifier_database_url, RECORDED, order_ids) == HELD

        await eventually(all_emailed, timeout_seconds=30, description="notifications waiting for the worker")
        async with table_locked(stack.orders_database_url, "orders") as release:
            resume()

            async def finished() -> list[str]:
                done = await count_of(stack.orders_database_url, NOTIFIED, order_ids)
                return [] if done == HELD else [f"{HELD - done} of the {HELD} messages in flight were not finished"]

            yield InFlight(
                f"{HELD} NotificationSent messages",
                _waiting(stack.orders_database_url, _queue_emptied(stack, "orders-worker")),
                release,
                finished,
            )


@asynccontextmanager
async def emails_held(stack: Stack, tokens: list[str]) -> AsyncIterator[InFlight]:
    """OrderCreated messages held in the notifier's batch, the emails sent, their rows not yet written."""
    async with table_locked(stack.notifier_database_url, "notifications") as release:
        # All of them in one relay batch, so that they reach the notifier together and are
        # held in one of its batches: placed concurrently, they could go out in two relay
        # batches, and the second one wait, unstarted, behind the held one. A message not yet
        # started is not in flight, and a stopping notifier rightly leaves it to the next.
        async with paused(stack.processes["orders-relay"]) as resume:
            order_ids = await _placed(stack, tokens)
            resume()

        async def finished() -> list[str]:
            recorded = await count_of(stack.notifier_database_url, RECORDED, order_ids)
            return [] if recorded == HELD else [f"{HELD - recorded} of the {HELD} emails in flight were not recorded"]

        yield InFlight(
            f"{HELD} OrderCreated messages",
            _waiting(stack.notifier_database_url, _queue_emptied(stack, "notifier")),
            release,
            finished,
        )


# Per process type: how work is held in flight in it.
HOLDS: dict[str, Callable[[Stack, list[str]], AbstractAsyncContextManager[InFlight]]] = {
    "gateway": requests_held,
    "orders-web": requests_held,
    "orders-relay": batch_held,
    "orders-worker": notifications_held,
    "notifier": emails_held,
}
