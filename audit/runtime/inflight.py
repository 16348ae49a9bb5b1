"""Work held in flight on purpose, for factor IX: each process type is given work that stays
unfinished — waiting on a PostgreSQL lock the audit holds — until the process has been told
to stop. Then the lock goes, and the work must still finish. Dozen batches its work (orders
placed in the same turn go in one statement, messages in one transaction), so the pieces in
flight wait on the lock as one or a few sessions: work is in flight when all of it is inside
the process (its requests in flight, its queue emptied into it) and something waits."""

from __future__ import annotations

import asyncio
import signal
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass

from audit.runtime.probes import (
    NOTIFIED,
    RECORDED,
    UNPUBLISHED,
    count_of,
    lock_waiters,
    place_order,
    place_orders,
    ready_messages,
    table_locked,
)
from audit.runtime.system import AuditedSystem
from harness.probes import metric_sum
from shared.testing import ServiceProcess, eventually

# Orders held in flight each time: within every pool and prefetch, so all wait at once.
HELD = 5


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


def _queue_emptied(system: AuditedSystem, queue: str) -> Callable[[], Awaitable[bool]]:
    async def inside() -> bool:
        return await ready_messages(system.amqp_url, system.private_name(queue)) == 0

    return inside


@asynccontextmanager
async def requests_held(system: AuditedSystem, tokens: list[str]) -> AsyncIterator[InFlight]:
    """Orders through the gateway, held at their INSERT: in flight in the gateway and orders web."""
    database_url = system.stack.orders_database_url
    async with table_locked(database_url, "orders") as release:
        answers = [asyncio.create_task(place_order(system.stack.gateway_url, token)) for token in tokens[:HELD]]

        async def finished() -> list[str]:
            statuses = Counter(
                answer.status if not isinstance(answer, BaseException) else type(answer).__name__
                for answer in await asyncio.gather(*answers, return_exceptions=True)
            )
            return [] if statuses == Counter({201: HELD}) else [f"the requests in flight got {dict(statuses)}"]

        yield InFlight(
            f"{HELD} order requests",
            _waiting(database_url, _requests_inside(system.stack.ports["orders-web"])),
            release,
            finished,
        )


@asynccontextmanager
async def batch_held(system: AuditedSystem, tokens: list[str]) -> AsyncIterator[InFlight]:
    """A relay batch held between its publishes and its commit (marking the orders published)."""
    database_url = system.stack.orders_database_url
    async with paused(system.process("orders-relay")) as resume:
        placed = await place_orders([system.stack.gateway_url], tokens[:HELD], HELD)
        order_ids = [str(answer.body["id"]) for answer in placed]
        async with table_locked(database_url, "orders") as release:
            resume()

            async def started() -> int | None:
                return 1 if await lock_waiters(database_url) else None

            async def finished() -> list[str]:
                left = await count_of(database_url, UNPUBLISHED, order_ids)
                return [f"{left} rows of the batch in flight were rolled back, to go out twice"] if left else []

            yield InFlight(f"a batch of {HELD} published events", started, release, finished)


@asynccontextmanager
async def notifications_held(system: AuditedSystem, tokens: list[str]) -> AsyncIterator[InFlight]:
    """NotificationSent messages held in the worker's handlers, at their UPDATE of the order."""
    stack = system.stack
    async with paused(system.process("orders-worker")) as resume:
        placed = await place_orders([stack.gateway_url], tokens[:HELD], HELD)
        order_ids = [str(answer.body["id"]) for answer in placed]

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
                _waiting(stack.orders_database_url, _queue_emptied(system, "orders.notification-sent")),
                release,
                finished,
            )


@asynccontextmanager
async def emails_held(system: AuditedSystem, tokens: list[str]) -> AsyncIterator[InFlight]:
    """OrderCreated messages held in the notifier's batch, the emails sent, their rows not yet written."""
    stack = system.stack
    async with table_locked(stack.notifier_database_url, "notifications") as release:
        placed = await place_orders([stack.gateway_url], tokens[:HELD], HELD)
        order_ids = [str(answer.body["id"]) for answer in placed]

        async def finished() -> list[str]:
            recorded = await count_of(stack.notifier_database_url, RECORDED, order_ids)
            return [] if recorded == HELD else [f"{HELD - recorded} of the {HELD} emails in flight were not recorded"]

        yield InFlight(
            f"{HELD} OrderCreated messages",
            _waiting(stack.notifier_database_url, _queue_emptied(system, "notifier.order-created")),
            release,
            finished,
        )


# Per process type: how work is held in flight in it.
HOLDS: dict[str, Callable[[AuditedSystem, list[str]], AbstractAsyncContextManager[InFlight]]] = {
    "gateway": requests_held,
    "orders-web": requests_held,
    "orders-relay": batch_held,
    "orders-worker": notifications_held,
    "notifier": emails_held,
}
