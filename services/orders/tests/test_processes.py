"""Every process type as a real OS process, started from the `orders` console script."""

from __future__ import annotations

import json
import signal
from collections import Counter
from importlib.resources import files
from typing import Any
from uuid import uuid4

import asyncpg
import pytest
from aio_pika.abc import AbstractIncomingMessage, AbstractRobustConnection

from shared.db import discover
from shared.events import CONTENT_TYPE, NotificationSentV1
from shared.messaging import Publisher, declare_event_exchange, open_confirming_channel
from shared.testing import ServiceProcess, eventually, execute, fetchval, free_port, wait_until_ready

from .support import (
    API_TOKEN,
    ORDERS_SCRIPT,
    Names,
    bind_probe_queue,
    every_row_marked,
    notification_sent,
    place_orders,
)


def environment(database_url: str, amqp_url: str, names: Names, port: int, **extra: str) -> dict[str, str]:
    """Every process type's; web serves its probes and metrics on ORDERS_MANAGEMENT_PORT."""
    return {
        "ORDERS_DATABASE_URL": database_url,
        "ORDERS_AMQP_URL": amqp_url,
        "ORDERS_PORT": str(port),
        "ORDERS_MANAGEMENT_PORT": str(free_port()),
        "ORDERS_API_TOKEN": API_TOKEN,
        "ORDERS_EVENTS_EXCHANGE": names.orders_exchange,
        "ORDERS_NOTIFICATIONS_EXCHANGE": names.notifier_exchange,
        "ORDERS_QUEUE": names.notification_queue,
        **extra,
    }


async def test_migrate_is_a_one_off_that_a_second_run_leaves_alone(database_url: str) -> None:
    shipped = [f"{migration.version:04d}_{migration.name}" for migration in discover(files("orders") / "migrations")]
    for expected_applied in (shipped, []):
        process = ServiceProcess([ORDERS_SCRIPT, "migrate"], env={"ORDERS_DATABASE_URL": database_url})
        await process.start()
        assert await process.wait(timeout_seconds=30) == 0, process.output()
        [done] = [record for record in process.records if record.get("message") == "migrations done"]
        assert done["applied"] == expected_applied
    assert await fetchval(database_url, "SELECT count(*) FROM schema_migrations") == len(shipped)


@pytest.mark.parametrize("command", ["web", "relay", "worker"])
async def test_process_type_starts_answers_readyz_and_exits_zero_on_sigterm(
    command: str, orders_database_url: str, amqp_url: str, names: Names
) -> None:
    port = free_port()
    process = ServiceProcess(
        [ORDERS_SCRIPT, command], env=environment(orders_database_url, amqp_url, names, port, ORDERS_RELEASE_ID="r7")
    )
    await process.start()
    try:
        probes = int(process.env["ORDERS_MANAGEMENT_PORT"]) if command == "web" else port
        await wait_until_ready(probes, what=f"orders {command}", process=process)
        process.send_signal(signal.SIGTERM)
        assert await process.wait(timeout_seconds=20) == 0, process.output()
    finally:
        await process.stop()
    assert all(record.get("release") == "r7" for record in process.records if "unparsed" not in record)
    assert process.records[-1]["message"] == "stopped"


@pytest.mark.parametrize(
    ("command", "missing"),
    [
        ("migrate", ["ORDERS_DATABASE_URL"]),
        ("web", ["ORDERS_API_TOKEN", "ORDERS_DATABASE_URL", "ORDERS_MANAGEMENT_PORT", "ORDERS_PORT"]),
        ("relay", ["ORDERS_DATABASE_URL", "ORDERS_AMQP_URL", "ORDERS_PORT"]),
        ("worker", ["ORDERS_DATABASE_URL", "ORDERS_AMQP_URL", "ORDERS_PORT"]),
        ("dlq list", ["ORDERS_AMQP_URL"]),
    ],
)
async def test_empty_environment_lists_every_missing_variable_and_exits_78(command: str, missing: list[str]) -> None:
    process = ServiceProcess([ORDERS_SCRIPT, *command.split()], env={})
    await process.start()

    assert await process.wait(timeout_seconds=30) == 78
    assert sorted(process.stderr_lines[:-1]) == sorted(
        f"config error: {name}: required but not set" for name in missing
    )
    assert process.lines == []


async def test_dlq_list_shows_a_parked_notification_and_replay_delivers_it_after_the_fix(
    orders_database_url: str, amqp_url: str, names: Names, amqp: AbstractRobustConnection
) -> None:
    port = free_port()
    env = environment(orders_database_url, amqp_url, names, port)
    worker = ServiceProcess([ORDERS_SCRIPT, "worker"], env=env)
    await worker.start()
    try:
        await wait_until_ready(port, what="orders worker", process=worker)
        lost_order = uuid4()  # an order this database does not have, say restored from a backup later
        channel = await open_confirming_channel(amqp)
        notifier = Publisher(await declare_event_exchange(channel, names.notifier_exchange), confirm_timeout_seconds=5)
        await notifier.publish(
            NotificationSentV1.event_type, notification_sent(lost_order), message_id="n-1", content_type=CONTENT_TYPE
        )

        async def listed() -> list[dict[str, Any]]:
            process = await _one_off(env, "dlq", "list")
            return [json.loads(line)["dead_letter"] for line in process.lines if '"dead_letter"' in line]

        async def parked() -> list[dict[str, Any]] | None:
            return await listed() or None

        [entry] = await eventually(parked, description="the notification parked")
        assert entry["message_id"] == "n-1"
        assert str(entry["reason"]).startswith(f"unprocessable: no order {lost_order}")
        assert await listed() == [entry], "listing must not remove anything"

        async with asyncpg.create_pool(orders_database_url, min_size=1, max_size=1) as pool:
            await place_orders(pool, 1)
            await pool.execute("UPDATE orders SET id = $1", lost_order)  # the fix: the order is back
        replay = await _one_off(env, "dlq", "replay")
        [done] = [record for record in replay.records if record.get("message") == "replay done"]
        assert done["replayed"] == 1

        await eventually(
            lambda: fetchval(orders_database_url, "SELECT status = 'notified' FROM orders"),
            description="the order notified after the replay",
        )
        assert await listed() == []
    finally:
        worker.send_signal(signal.SIGTERM)
        await worker.wait(timeout_seconds=20)
        await worker.stop()


async def _one_off(env: dict[str, str], *command: str) -> ServiceProcess:
    process = ServiceProcess([ORDERS_SCRIPT, *command], env=env)
    await process.start()
    assert await process.wait(timeout_seconds=30) == 0, process.output()
    return process


async def test_relay_killed_mid_batch_publishes_at_least_once_after_restart(
    orders_database_url: str, amqp_url: str, names: Names, amqp: AbstractRobustConnection
) -> None:
    total, batch = 3000, 1000
    await _seed_orders(orders_database_url, total)
    received = await _record_order_created(amqp, names)
    env = environment(orders_database_url, amqp_url, names, free_port(), ORDERS_RELAY_BATCH_SIZE=str(batch))

    async def quiet() -> bool:
        return await _probe_is_empty(amqp, names)

    first = ServiceProcess([ORDERS_SCRIPT, "relay"], env=env)
    await first.start()
    try:
        # Killed as soon as the first message of a 1000-row batch reaches the broker:
        # the rest of the batch is in flight and nothing of it is marked yet.
        await eventually(lambda: received, timeout_seconds=30, description="first publishes")
        first.send_signal(signal.SIGKILL)
        assert await first.wait(timeout_seconds=10) == -signal.SIGKILL
    finally:
        await first.stop()
    await eventually(quiet, description="deliveries before the kill received")
    delivered_before = len(set(received))  # a lower bound: some deliveries may still be on their way
    marked_at_kill = await _event_ids(orders_database_url, "published_at IS NOT NULL")
    assert delivered_before > len(marked_at_kill), "the kill did not land between a publish and its mark"

    second = ServiceProcess([ORDERS_SCRIPT, "relay"], env=env)
    await second.start()
    try:
        await eventually(
            lambda: every_row_marked(orders_database_url),
            timeout_seconds=60,
            description="every row marked",
        )
        second.send_signal(signal.SIGTERM)
        assert await second.wait(timeout_seconds=20) == 0
    finally:
        await second.stop()
    await eventually(lambda: len(received) >= total, description="every event received")
    await eventually(quiet, description="all deliveries received")

    counts = Counter(received)
    duplicated = {event_id for event_id, times in counts.items() if times > 1}
    assert set(counts) == await _event_ids(orders_database_url, "true"), "an event was lost"
    assert max(counts.values()) <= 2
    # Only rows published but not yet marked when the relay died go out again.
    assert duplicated.isdisjoint(marked_at_kill)
    assert len(duplicated) >= delivered_before - len(marked_at_kill)
    print(
        f"relay kill: {total} rows; at the kill {delivered_before} delivered, {len(marked_at_kill)} marked; "
        f"{len(duplicated)} sent twice after the restart, none lost"
    )


async def _seed_orders(url: str, count: int) -> None:
    pool = await asyncpg.create_pool(url, min_size=1, max_size=2)
    try:
        await place_orders(pool, count)
    finally:
        await pool.close()


async def _record_order_created(amqp: AbstractRobustConnection, names: Names) -> list[str | None]:
    """Message ids of OrderCreated as they arrive, pushed: the first is seen the moment it is routed."""
    received: list[str | None] = []

    async def record(message: AbstractIncomingMessage) -> None:
        received.append(message.message_id)

    probe = await bind_probe_queue(amqp, names)
    await probe.consume(record, no_ack=True)
    return received


async def _probe_is_empty(amqp: AbstractRobustConnection, names: Names) -> bool:
    channel = await amqp.channel()
    try:
        queue = await channel.declare_queue(names.probe_queue, passive=True)
        return queue.declaration_result.message_count == 0
    finally:
        await channel.close()


async def _event_ids(url: str, condition: str) -> set[str | None]:
    connection = await asyncpg.connect(url)
    try:
        rows = await connection.fetch(f"SELECT event_id::text FROM outbox WHERE {condition}")  # noqa: S608
        return {row["event_id"] for row in rows}
    finally:
        await connection.close()


async def test_prune_is_a_one_off_that_deletes_only_what_is_past_the_retention(orders_database_url: str) -> None:
    await execute(
        orders_database_url,
        """
        INSERT INTO outbox (event_id, event_type, aggregate_id, payload, created_at, published_at)
        SELECT gen_random_uuid(), 'dozen.order.created.v1', gen_random_uuid(), '{}', at, published
        FROM (VALUES (now() - interval '40 days', now() - interval '40 days'),
                     (now() - interval '40 days', NULL),
                     (now(), now())) AS rows(at, published);
        INSERT INTO inbox (event_id, event_type, received_at)
        VALUES (gen_random_uuid(), 'dozen.notification.sent.v1', now() - interval '40 days'),
               (gen_random_uuid(), 'dozen.notification.sent.v1', now());
        """,
    )
    env = {"ORDERS_DATABASE_URL": orders_database_url, "ORDERS_RETENTION_DAYS": "30"}
    for command, expected in ((["--dry-run"], {"would_delete": {"outbox": 1, "inbox": 1}}), ([], None)):
        process = ServiceProcess([ORDERS_SCRIPT, "prune", *command], env=env)
        await process.start()
        assert await process.wait(timeout_seconds=30) == 0, process.output()
        if expected:
            printed = [json.loads(line) for line in process.lines if line.startswith('{"would_delete"')]
            assert printed == [expected], process.output()

    # Gone: the row published long ago and the event consumed long ago. Kept: the row never
    # published however old (the relay still owes it), and everything recent.
    assert await fetchval(orders_database_url, "SELECT count(*) FROM outbox") == 2
    assert await fetchval(orders_database_url, "SELECT count(*) FROM outbox WHERE published_at IS NULL") == 1
    assert await fetchval(orders_database_url, "SELECT count(*) FROM inbox") == 1
