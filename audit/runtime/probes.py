"""What the runtime audit asks the running system: its orders, its queues, and PostgreSQL's
locks (which hold work in flight on purpose)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import aio_pika
import aiohttp
import asyncpg
from aio_pika.abc import AbstractQueue

from harness.api import Customer, Reply
from harness.probes import HTTP_TIMEOUT
from shared.testing import fetch, fetchval


async def place_order(gateway_url: str, token: str, key: str | None = None) -> Reply:
    """POST one order through the gateway as the token's customer, a patient one: refused past
    capacity, it waits the Retry-After and asks again, same key."""
    async with aiohttp.ClientSession(timeout=HTTP_TIMEOUT) as http:
        return await Customer(http, gateway_url, token).place(key=key)


async def place_orders(gateway_urls: list[str], tokens: list[str], count: int) -> list[Reply]:
    """``count`` orders at once, spread over the gateways and the customers."""
    return await asyncio.gather(
        *(
            place_order(gateway_urls[number % len(gateway_urls)], tokens[number % len(tokens)])
            for number in range(count)
        )
    )


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
    whatever writes to it waits, in flight, for as long as the audit wants."""
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
    """The queue ``name`` as it is (declared passively: the audit never creates topology)."""
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
