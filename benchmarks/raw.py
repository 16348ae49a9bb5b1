"""Raw limits of the parts, each alone, through the same client libraries Dozen uses."""

from __future__ import annotations

import asyncio
import sys
import uuid
from typing import Any

import aio_pika
import aiohttp
import asyncpg

from orders.models import OrderLine, PlaceOrder
from orders.repository import place_order
from shared.db import migrate_package
from shared.messaging.topology import declare_consumer_queue
from shared.testing import ServiceProcess, free_port, wait_until_ready
from shared.testing.amqp import AmqpNames

from . import cpu
from .load import closed_loop, percentile

ORDER = PlaceOrder(
    customer_id="bench", currency="EUR", items=(OrderLine(sku="SKU-1", quantity=1, unit_price_cents=999),)
)


def summary(ok: int, seconds: float, latencies_ms: list[float] | None = None, **extra: object) -> dict[str, Any]:
    figures: dict[str, Any] = {"count": ok, "per_second": round(ok / seconds, 1), **extra}
    if latencies_ms:
        figures["p50_ms"] = round(percentile(latencies_ms, 0.50) or 0, 2)
        figures["p99_ms"] = round(percentile(latencies_ms, 0.99) or 0, 2)
    return figures


async def http_hello(*, seconds: float, concurrency: int) -> dict[str, Any]:
    """GET / answering {"hello": "world"}: one aiohttp process, no database, no logging."""
    port = free_port()
    server = ServiceProcess([sys.executable, "-m", "benchmarks.hello", str(port)], env={})
    await server.start()
    try:
        await wait_until_ready(port, what="hello", process=server)
        url = f"http://127.0.0.1:{port}/"
        connector = aiohttp.TCPConnector(limit=concurrency)
        async with aiohttp.ClientSession(connector=connector) as session:

            async def get(_: int) -> None:
                async with session.get(url) as response:
                    await response.read()
                    response.raise_for_status()

            before = cpu.snapshot([cpu.pids("hello", [server.pid])])
            outcome = await closed_loop(get, concurrency=concurrency, seconds=seconds)
            used = cpu.spent(before, cpu.snapshot([cpu.pids("hello", [server.pid])]))["hello"]
        return summary(
            outcome.ok,
            outcome.seconds,
            outcome.latencies_ms,
            errors=outcome.error_count,
            server_cpu_ms_per_request=round(used * 1000 / max(outcome.ok, 1), 3),
        )
    finally:
        await server.stop()


async def postgres_orders(database_url: str, *, seconds: float, concurrency: int) -> dict[str, Any]:
    """Dozen's own order + outbox transaction (orders.repository.place_order), back to back."""
    await migrate_package(database_url, "orders")
    pool = await asyncpg.create_pool(database_url, min_size=concurrency, max_size=concurrency)
    try:

        async def place(_: int) -> None:
            await place_order(pool, ORDER, idempotency_key=str(uuid.uuid4()), event_source="bench", trace_context={})

        outcome = await closed_loop(place, concurrency=concurrency, seconds=seconds)
    finally:
        await pool.close()
    return summary(outcome.ok, outcome.seconds, outcome.latencies_ms, errors=outcome.error_count)


async def rabbitmq_messages(amqp_url: str, *, seconds: float, concurrency: int) -> dict[str, Any]:
    """Persistent messages published with confirms to a quorum queue, then consumed with acks."""
    names = AmqpNames(f"bench-{uuid.uuid4().hex[:8]}")
    connection = await aio_pika.connect_robust(amqp_url)
    try:
        channel = await connection.channel(publisher_confirms=True)
        declared = await declare_consumer_queue(
            channel, queue_name=names("bench.queue"), exchange_name=names("bench.events"), routing_keys=["bench"]
        )
        exchange = await channel.get_exchange(names.issued[-1])
        body = b'{"specversion": "1.0", "type": "dozen.bench.v1", "data": {"order_id": "' + b"0" * 36 + b'"}}'

        async def publish(index: int) -> None:
            message = aio_pika.Message(body, message_id=str(index), delivery_mode=aio_pika.DeliveryMode.PERSISTENT)
            await exchange.publish(message, routing_key="bench", mandatory=True)

        published = await closed_loop(publish, concurrency=concurrency, seconds=seconds)

        consume_channel = await connection.channel()
        await consume_channel.set_qos(prefetch_count=200)
        queue = await consume_channel.get_queue(declared.queue.name)
        consumed = 0
        done = asyncio.Event()
        loop = asyncio.get_running_loop()
        began = loop.time()

        async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            nonlocal consumed
            await message.ack()
            consumed += 1
            if consumed >= published.ok:
                done.set()

        await queue.consume(on_message)
        await asyncio.wait_for(done.wait(), timeout=120)
        consume_seconds = loop.time() - began
    finally:
        await connection.close()
        await names.delete_all(amqp_url)
    return {
        "publish": summary(published.ok, published.seconds, published.latencies_ms, errors=published.error_count),
        "consume": summary(consumed, consume_seconds),
    }
