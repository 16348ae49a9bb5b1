"""What a test asks the running system besides its API: its metrics, what crosses its
exchanges, what its databases hold, its queues, and PostgreSQL's locks (which hold work in
flight on purpose)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import aio_pika
import aiohttp
import asyncpg
from aio_pika.abc import AbstractIncomingMessage, AbstractQueue
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from shared.testing import fetch, fetchval

HTTP_TIMEOUT = aiohttp.ClientTimeout(total=30)


async def _samples(port: int) -> list[Sample]:
    """Every sample a process's /metrics shows now."""
    async with (
        aiohttp.ClientSession(timeout=HTTP_TIMEOUT) as http,
        http.get(f"http://127.0.0.1:{port}/metrics") as answer,
    ):
        text = await answer.text()
    return [found for family in text_string_to_metric_families(text) for found in family.samples]


async def metric_sum(port: int, sample: str, **labels: str) -> float:
    """The sum of every ``sample`` series on a process's /metrics matching ``labels``."""
    return sum(
        found.value
        for found in await _samples(port)
        if found.name == sample and all(found.labels.get(name) == value for name, value in labels.items())
    )


async def build_info(port: int) -> dict[str, str] | None:
    """The labels of a process's dozen_build_info series (None: it has none)."""
    return next((dict(found.labels) for found in await _samples(port) if found.name == "dozen_build_info"), None)


async def notifications_per_order(notifier_database_url: str, order_ids: list[str]) -> Counter[str]:
    rows = await fetch(
        notifier_database_url,
        "SELECT order_id::text AS order_id FROM notifications WHERE order_id = ANY($1::uuid[])",
        order_ids,
    )
    return Counter(row["order_id"] for row in rows)


@dataclass
class Tap:
    """Every event that crossed the tapped exchanges: (event type, subject) -> times seen."""

    seen: Counter[tuple[str, str]] = field(default_factory=Counter)

    def times(self, event_type: str, subject: str) -> int:
        return self.seen[event_type, subject]

    def subjects(self, event_type: str) -> Counter[str]:
        """Subject -> times seen, for the events of one type."""
        return Counter({subject: times for (kind, subject), times in self.seen.items() if kind == event_type})


@asynccontextmanager
async def tapped(amqp_url: str, exchanges: list[str]) -> AsyncIterator[Tap]:
    """A private queue bound to ``exchanges`` with ``#``: a copy of every event published there."""
    tap = Tap()

    async def record(message: AbstractIncomingMessage) -> None:
        event = json.loads(message.body)
        tap.seen[str(event.get("type")), str(event.get("subject"))] += 1

    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel()
        queue = await channel.declare_queue(exclusive=True, auto_delete=True)
        for exchange in exchanges:
            await queue.bind(exchange, "#")
        await queue.consume(record, no_ack=True)
        yield tap
    finally:
        await connection.close()


# Counts over the orders with the ids given as $1.
NOTIFIED = "SELECT count(*) FROM orders WHERE status = 'notified' AND id = ANY($1::uuid[])"
RECORDED = "SELECT count(*) FROM notifications WHERE order_id = ANY($1::uuid[])"
UNPUBLISHED = "SELECT count(*) FROM outbox WHERE published_at IS NULL AND aggregate_id = ANY($1::uuid[])"


async def count_of(database_url: str, query: str, order_ids: list[str]) -> int:
    [row] = await fetch(database_url, query, order_ids)
    return int(row[0])


@asynccontextmanager
async def table_locked(database_url: str, table: str) -> AsyncIterator[Callable[[], Awaitable[None]]]:
    """``table`` locked against writes until the returned release is awaited (or the block ends):
    whatever writes to it waits, in flight, for as long as the caller wants."""
    connection = await asyncpg.connect(database_url)
    transaction = connection.transaction()
    await transaction.start()
    await connection.execute(f"LOCK TABLE {table} IN EXCLUSIVE MODE")
    released = False

    async def release() -> None:
        nonlocal released
        if not released:
            released = True
            await transaction.rollback()

    try:
        yield release
    finally:
        await release()
        await connection.close()


async def lock_waiters(database_url: str) -> int:
    """Sessions of that database waiting for a lock right now."""
    return int(
        await fetchval(
            database_url,
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
    )


@asynccontextmanager
async def existing_queue(amqp_url: str, name: str) -> AsyncIterator[AbstractQueue]:
    """The queue ``name`` as it is (declared passively: nothing here creates topology)."""
    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel()
        yield await channel.declare_queue(name, passive=True)
    finally:
        await connection.close()


async def ready_messages(amqp_url: str, queue: str) -> int:
    """Messages waiting in ``queue``, not yet delivered to any consumer."""
    async with existing_queue(amqp_url, queue) as declared:
        return int(declared.declaration_result.message_count or 0)
