"""`orders outbox redrive`: the events of orders stuck before their notification go out again."""

from __future__ import annotations

import json
import signal
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
from aio_pika.abc import AbstractRobustConnection

from orders.outbox import NOTIFY_CHANNEL, NotRedrivable, redrive
from shared.db import Pool
from shared.events import OrderCreatedV1
from shared.testing import ServiceProcess, drain, eventually, execute, fetch, free_port, wait_until_ready

from .support import ORDERS_SCRIPT, Names, bind_probe_queue, every_row_marked, place_orders
from .test_processes import environment

EVENT = OrderCreatedV1.event_type


@pytest.fixture
async def pool(orders_database_url: str) -> AsyncIterator[Pool]:
    pool = await asyncpg.create_pool(orders_database_url, min_size=1, max_size=2)
    yield pool
    await pool.close()


async def order_ids(url: str) -> list[uuid.UUID]:
    return [row["id"] for row in await fetch(url, "SELECT id FROM orders ORDER BY created_at")]


async def published_an_hour_ago(url: str) -> None:
    await execute(url, "UPDATE outbox SET published_at = clock_timestamp() - interval '1 hour'")
    await execute(url, "UPDATE orders SET published_at = clock_timestamp() - interval '1 hour'")


async def unpublished(url: str) -> set[uuid.UUID]:
    rows = await fetch(url, "SELECT aggregate_id FROM outbox WHERE published_at IS NULL")
    return {row["aggregate_id"] for row in rows}


async def test_only_orders_stuck_longer_than_the_threshold_and_not_notified_are_redriven(
    pool: Pool, orders_database_url: str
) -> None:
    await place_orders(pool, 4)
    await published_an_hour_ago(orders_database_url)
    stuck, notified, recent, never_published = await order_ids(orders_database_url)
    await fetch(orders_database_url, "UPDATE orders SET status = 'notified' WHERE id = $1", notified)
    await fetch(orders_database_url, "UPDATE outbox SET published_at = now() WHERE aggregate_id = $1", recent)
    await fetch(orders_database_url, "UPDATE outbox SET published_at = NULL WHERE aggregate_id = $1", never_published)

    woken: list[str] = []
    listener = await asyncpg.connect(orders_database_url)
    await listener.add_listener(NOTIFY_CHANNEL, lambda *args: woken.append(args[2]))
    try:
        redriven = await redrive(
            pool, event_type=EVENT, order_ids=None, stuck_for_seconds=600, limit=100, dry_run=False
        )
        # The relays are woken at commit, not left to their fallback poll.
        await eventually(lambda: woken, timeout_seconds=3, description="relays notified")
    finally:
        await listener.close()

    assert [row.order_id for row in redriven] == [stuck]
    assert await unpublished(orders_database_url) == {stuck, never_published}
    # The order keeps the time its event first went out.
    [kept] = await fetch(orders_database_url, "SELECT published_at FROM orders WHERE id = $1", stuck)
    assert kept["published_at"] is not None


async def test_a_dry_run_lists_and_changes_nothing(pool: Pool, orders_database_url: str) -> None:
    await place_orders(pool, 3)
    await published_an_hour_ago(orders_database_url)

    listed = await redrive(pool, event_type=EVENT, order_ids=None, stuck_for_seconds=60, limit=2, dry_run=True)

    assert len(listed) == 2
    assert await unpublished(orders_database_url) == set()


async def test_named_orders_are_all_redriven_or_none_is(pool: Pool, orders_database_url: str) -> None:
    await place_orders(pool, 2)
    await published_an_hour_ago(orders_database_url)
    first, second = await order_ids(orders_database_url)
    await fetch(orders_database_url, "UPDATE orders SET status = 'notified' WHERE id = $1", second)
    unknown = uuid.uuid4()

    with pytest.raises(NotRedrivable) as refused:
        await redrive(
            pool, event_type=EVENT, order_ids=[first, second, unknown], stuck_for_seconds=0, limit=10, dry_run=False
        )

    assert refused.value.reasons == {second: "already notified", unknown: "no such order"}
    assert await unpublished(orders_database_url) == set()
    # Named, an order is re-driven however recently it was published.
    await execute(orders_database_url, "UPDATE outbox SET published_at = clock_timestamp()")
    redriven = await redrive(pool, event_type=EVENT, order_ids=[first], stuck_for_seconds=600, limit=10, dry_run=False)
    assert [row.order_id for row in redriven] == [first]


async def test_the_one_off_command_gets_a_lost_event_published_again_by_the_running_relay(
    pool: Pool, orders_database_url: str, amqp_url: str, amqp: AbstractRobustConnection, names: Names
) -> None:
    probe = await bind_probe_queue(amqp, names)
    relay = ServiceProcess([ORDERS_SCRIPT, "relay"], env=environment(orders_database_url, amqp_url, names, free_port()))
    await relay.start()
    try:
        await wait_until_ready(int(relay.env["ORDERS_PORT"]), what="relay", process=relay)
        await place_orders(pool, 1)
        [order_id] = await order_ids(orders_database_url)
        await eventually(lambda: every_row_marked(orders_database_url), description="published")
        # The delivery is lost downstream (a queue purged, say): the order would wait forever.
        [first] = await eventually(lambda: drain(probe), description="first delivery")

        redrive_command = ServiceProcess(
            [ORDERS_SCRIPT, "outbox", "redrive", "--order", str(order_id)],
            env={"ORDERS_DATABASE_URL": orders_database_url},
        )
        await redrive_command.start()
        assert await redrive_command.wait(timeout_seconds=30) == 0, redrive_command.output()

        [again] = await eventually(lambda: drain(probe), description="the same event published again")
        relay.send_signal(signal.SIGTERM)
        assert await relay.wait(timeout_seconds=20) == 0, relay.output()
    finally:
        await relay.stop()
    assert again.message_id == first.message_id
    assert json.loads(again.body) == json.loads(first.body)
    [output] = [record for record in redrive_command.records if isinstance(record.get("redriven"), dict)]
    assert output["redriven"]["order_id"] == str(order_id)
    assert output["redriven"]["event_id"] == first.message_id


async def test_the_command_refuses_an_unknown_order_with_one_line_and_exit_1(orders_database_url: str) -> None:
    unknown = uuid.uuid4()
    process = ServiceProcess(
        [ORDERS_SCRIPT, "outbox", "redrive", "--order", str(unknown)], env={"ORDERS_DATABASE_URL": orders_database_url}
    )
    await process.start()

    assert await process.wait(timeout_seconds=30) == 1
    [error] = [record for record in process.records if record.get("level") == "error"]
    assert error["message"] == "cannot re-drive; nothing changed"
    assert error["reason"] == "no such order"
    assert error["order_id"] == str(unknown)
    assert "exc_info" not in error
    assert process.stderr_lines == []
