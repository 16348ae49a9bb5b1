"""The relay against real PostgreSQL and RabbitMQ, in-process."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack

import aiohttp
import asyncpg
import pytest
from aio_pika.abc import AbstractIncomingMessage, AbstractQueue, AbstractRobustConnection
from aiohttp.test_utils import TestServer
from prometheus_client import REGISTRY

from orders.relay import create_relay_app
from orders.settings import RelaySettings
from shared.db import Pool
from shared.messaging import declare_event_exchange
from shared.testing import ServiceProcess, drain, eventually, fetchval

from .support import ORDERS_SCRIPT, Names, bind_probe_queue, every_row_marked, place_orders


def relay_settings(database_url: str, amqp_url: str, names: Names, **overrides: object) -> RelaySettings:
    values: dict[str, object] = {
        "database_url": database_url,
        "amqp_url": amqp_url,
        "port": 1,
        "events_exchange": names.orders_exchange,
        "relay_batch_size": 25,
    }
    return RelaySettings(**(values | overrides))  # type: ignore[arg-type]


@pytest.fixture
async def pool(orders_database_url: str) -> AsyncIterator[Pool]:
    pool = await asyncpg.create_pool(orders_database_url, min_size=1, max_size=4)
    yield pool
    await pool.close()


@pytest.fixture
async def probe(amqp: AbstractRobustConnection, names: Names) -> AbstractQueue:
    return await bind_probe_queue(amqp, names)


async def relay_running(stack: AsyncExitStack, settings: RelaySettings) -> None:
    await stack.enter_async_context(TestServer(create_relay_app(settings)))


async def collect(probe: AbstractQueue, expected: int) -> list[AbstractIncomingMessage]:
    received: list[AbstractIncomingMessage] = []

    async def all_arrived() -> bool:
        received.extend(await drain(probe))
        return len(received) >= expected

    await eventually(all_arrived, timeout_seconds=30, description=f"{expected} messages")
    return received


async def published_once_each(
    settings: RelaySettings, probe: AbstractQueue, expected: int, *, relays: int = 1
) -> list[AbstractIncomingMessage]:
    """What ``relays`` relays side by side publish until every row is marked: ``expected``
    messages, none twice."""
    database_url = settings.database_url.get_secret_value()
    async with AsyncExitStack() as stack:
        for _ in range(relays):
            await relay_running(stack, settings)
        received = await collect(probe, expected)
        await eventually(lambda: every_row_marked(database_url), description="every row marked")
    received += await drain(probe)
    ids = Counter(message.message_id for message in received)
    assert len(ids) == expected, len(ids)
    assert set(ids.values()) == {1}, ids.most_common(3)
    return received


async def test_relay_publishes_every_row_exactly_once_and_marks_it(
    orders_database_url: str, amqp_url: str, names: Names, pool: Pool, probe: AbstractQueue
) -> None:
    await place_orders(pool, 60)

    received = await published_once_each(relay_settings(orders_database_url, amqp_url, names), probe, 60)

    assert await fetchval(orders_database_url, "SELECT count(*) FROM orders WHERE published_at IS NULL") == 0
    first = received[0]
    assert first.content_type == "application/cloudevents+json"
    assert first.routing_key == "dozen.order.created.v1"
    event = json.loads(first.body)
    assert event["id"] == first.message_id


async def test_relay_wakes_on_notify_for_orders_placed_while_it_runs(
    orders_database_url: str, amqp_url: str, names: Names, pool: Pool, probe: AbstractQueue
) -> None:
    # A poll interval far beyond the test's deadline: only LISTEN/NOTIFY can deliver in time.
    settings = relay_settings(orders_database_url, amqp_url, names, relay_poll_interval_seconds=3600)
    async with AsyncExitStack() as stack:
        await relay_running(stack, settings)
        await eventually(lambda: REGISTRY.get_sample_value("dozen_outbox_backlog") == 0, description="relay caught up")
        await place_orders(pool, 3)

        received = await collect(probe, 3)

    assert len(received) == 3


async def test_two_relays_side_by_side_never_publish_a_row_twice(
    orders_database_url: str, amqp_url: str, names: Names, pool: Pool, probe: AbstractQueue
) -> None:
    await place_orders(pool, 400)
    settings = relay_settings(orders_database_url, amqp_url, names, relay_batch_size=10)

    await published_once_each(settings, probe, 400, relays=2)


async def test_unroutable_events_stay_in_the_outbox_until_a_consumer_binds(
    orders_database_url: str, amqp_url: str, names: Names, pool: Pool, amqp: AbstractRobustConnection
) -> None:
    await place_orders(pool, 5)
    settings = relay_settings(orders_database_url, amqp_url, names, relay_poll_interval_seconds=0.05)

    async with AsyncExitStack() as stack:
        await relay_running(stack, settings)
        await eventually(
            lambda: (
                (REGISTRY.get_sample_value("dozen_outbox_publish_failures_total", {"reason": "Unroutable"}) or 0) >= 5
            ),
            description="publishes refused as unroutable",
        )
        assert await fetchval(orders_database_url, "SELECT count(*) FROM outbox WHERE published_at IS NULL") == 5

        probe = await bind_probe_queue(amqp, names)
        received = await collect(probe, 5)

    assert len({message.message_id for message in received}) == 5


async def test_a_relay_loop_that_dies_turns_liveness_red_instead_of_idling_live_and_ready(
    orders_database_url: str, amqp_url: str, names: Names, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken_connect(*args: object, **kwargs: object) -> None:
        raise RuntimeError("a bug in the LISTEN loop")

    monkeypatch.setattr("orders.relay.asyncpg.connect", broken_connect)
    async with (
        TestServer(create_relay_app(relay_settings(orders_database_url, amqp_url, names))) as server,
        aiohttp.ClientSession() as http,
    ):

        async def liveness_red() -> bool:
            async with http.get(server.make_url("/healthz")) as response:
                return response.status == 503 and (await response.json())["reason"] == "outbox-listener ended"

        await eventually(liveness_red, description="liveness red, naming the loop")


NOBODY_BINDS = "dozen.nobody.listens.v1"


async def refused_rows_at_the_head(pool: Pool, count: int) -> None:
    """Outbox rows older than any order that no queue takes: the broker refuses each one."""
    await pool.execute(
        """INSERT INTO outbox (event_id, event_type, aggregate_id, payload)
           SELECT gen_random_uuid(), $1, gen_random_uuid(), '{}'::jsonb FROM generate_series(1, $2)""",
        NOBODY_BINDS,
        count,
    )


async def test_rows_the_broker_refuses_at_the_head_of_the_outbox_hold_up_nothing_behind_them(
    orders_database_url: str, amqp_url: str, names: Names, pool: Pool, probe: AbstractQueue
) -> None:
    await refused_rows_at_the_head(pool, 100)
    await place_orders(pool, 5)

    async with AsyncExitStack() as stack:
        await relay_running(stack, relay_settings(orders_database_url, amqp_url, names, relay_batch_size=25))
        received = await collect(probe, 5)

    assert len({message.message_id for message in received}) == 5
    assert await fetchval(orders_database_url, "SELECT count(*) FROM orders WHERE published_at IS NULL") == 0
    assert await fetchval(orders_database_url, "SELECT min(attempts) FROM outbox WHERE event_type = $1", NOBODY_BINDS)


async def test_rows_refused_past_the_limit_are_parked_counted_and_unparked_by_the_one_off(
    orders_database_url: str, amqp_url: str, names: Names, pool: Pool, amqp: AbstractRobustConnection
) -> None:
    await refused_rows_at_the_head(pool, 3)
    settings = relay_settings(
        orders_database_url,
        amqp_url,
        names,
        relay_max_attempts=2,
        relay_first_backoff_seconds=0.01,
        relay_max_backoff_seconds=0.02,
        relay_poll_interval_seconds=0.05,
        relay_metrics_interval_seconds=0.05,
    )
    async with AsyncExitStack() as stack:
        await relay_running(stack, settings)
        await eventually(lambda: REGISTRY.get_sample_value("dozen_outbox_parked") == 3, description="3 rows parked")
        assert await fetchval(orders_database_url, "SELECT min(attempts) FROM outbox") == 2
        assert REGISTRY.get_sample_value("dozen_outbox_backlog") == 0

        channel = await amqp.channel()
        exchange = await declare_event_exchange(channel, names.orders_exchange)
        fixed = await channel.declare_queue(names.probe_queue, durable=True)
        await fixed.bind(exchange, NOBODY_BINDS)
        listed = await one_off(orders_database_url, "outbox", "unpark", "--dry-run")
        assert [json.loads(line)["parked"]["event_type"] for line in listed] == [NOBODY_BINDS] * 3
        assert REGISTRY.get_sample_value("dozen_outbox_parked") == 3, "a dry run changed something"
        await one_off(orders_database_url, "outbox", "unpark")

        received = await collect(fixed, 3)
    assert len({message.message_id for message in received}) == 3
    assert await every_row_marked(orders_database_url)


async def one_off(database_url: str, *command: str) -> list[str]:
    """An `orders` admin command run to its end; the lines it printed (its log lines aside)."""
    process = ServiceProcess([ORDERS_SCRIPT, *command], env={"ORDERS_DATABASE_URL": database_url})
    await process.start()
    assert await process.wait(timeout_seconds=30) == 0, process.output()
    return [line for line in process.lines if '"level"' not in line]
