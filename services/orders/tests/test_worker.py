"""The worker: NotificationSent marks an order notified, once, however often it arrives."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from uuid import UUID, uuid4

import asyncpg
import pytest
from aio_pika.abc import AbstractIncomingMessage, AbstractRobustConnection
from aiohttp.test_utils import TestServer
from prometheus_client import REGISTRY

from orders.settings import WorkerSettings
from orders.worker import create_worker_app
from shared.db import Pool
from shared.events import CONTENT_TYPE, NotificationSentV1
from shared.messaging import (
    REASON_HEADER,
    Publisher,
    dead_letter_names,
    declare_event_exchange,
    open_confirming_channel,
)
from shared.messaging.acks import Acknowledgements
from shared.testing import eventually, fetchval

from .support import Names, notification_sent, place_orders


@pytest.fixture
async def order_id(orders_database_url: str) -> UUID:
    pool: Pool = await asyncpg.create_pool(orders_database_url, min_size=1, max_size=1)
    try:
        await place_orders(pool, 1)
        return UUID(str(await pool.fetchval("SELECT id FROM orders")))
    finally:
        await pool.close()


def worker_settings(orders_database_url: str, amqp_url: str, names: Names) -> WorkerSettings:
    return WorkerSettings(
        database_url=orders_database_url,
        amqp_url=amqp_url,
        port=1,
        notifications_exchange=names.notifier_exchange,
        queue=names.notification_queue,
        max_attempts=2,
        first_backoff_seconds=0.01,
        max_backoff_seconds=0.02,
        shutdown_timeout_seconds=0.5,
    )


@pytest.fixture
async def worker(orders_database_url: str, amqp_url: str, names: Names) -> AsyncIterator[WorkerSettings]:
    settings = worker_settings(orders_database_url, amqp_url, names)
    async with TestServer(create_worker_app(settings)):
        yield settings


@pytest.fixture
async def notifier(amqp: AbstractRobustConnection, names: Names) -> Publisher:
    """Publishes as the notifier would, onto its own exchange."""
    channel = await open_confirming_channel(amqp)
    return Publisher(await declare_event_exchange(channel, names.notifier_exchange), confirm_timeout_seconds=5)


def handled(queue: str, outcome: str) -> float:
    return REGISTRY.get_sample_value("dozen_messages_handled_total", {"queue": queue, "outcome": outcome}) or 0


async def send(notifier: Publisher, body: bytes, message_id: str) -> None:
    await notifier.publish(NotificationSentV1.event_type, body, message_id=message_id, content_type=CONTENT_TYPE)


async def test_notification_marks_the_order_notified(
    worker: WorkerSettings, notifier: Publisher, order_id: UUID, orders_database_url: str
) -> None:
    await send(notifier, notification_sent(order_id), "n-1")

    await eventually(
        lambda: fetchval(orders_database_url, "SELECT status = 'notified' AND notified_at IS NOT NULL FROM orders"),
        description="order notified",
    )


async def test_redelivered_event_changes_nothing(
    worker: WorkerSettings, notifier: Publisher, order_id: UUID, orders_database_url: str
) -> None:
    event_id = uuid4()
    body = notification_sent(order_id, event_id)
    queue = worker.queue
    await send(notifier, body, str(event_id))
    await eventually(lambda: handled(queue, "acked") == 1, description="first delivery handled")
    notified_at = await fetchval(orders_database_url, "SELECT notified_at FROM orders")
    duplicates = {"event_type": NotificationSentV1.event_type}
    duplicates_before = REGISTRY.get_sample_value("dozen_inbox_duplicates_total", duplicates) or 0

    await send(notifier, body, str(event_id))
    await send(notifier, body, str(event_id))
    await eventually(lambda: handled(queue, "acked") == 3, description="redeliveries handled")

    assert await fetchval(orders_database_url, "SELECT count(*) FROM inbox") == 1
    assert await fetchval(orders_database_url, "SELECT notified_at FROM orders") == notified_at
    assert REGISTRY.get_sample_value("dozen_inbox_duplicates_total", duplicates) == duplicates_before + 2


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"not json", "unprocessable: body is not JSON"),
        (notification_sent(UUID(int=7)), "unprocessable: no order 00000000-0000-0000-0000-000000000007"),
    ],
    ids=["unparseable", "unknown-order"],
)
async def test_poison_is_dead_lettered_with_its_reason(
    worker: WorkerSettings,
    notifier: Publisher,
    amqp: AbstractRobustConnection,
    orders_database_url: str,
    body: bytes,
    reason: str,
) -> None:
    await send(notifier, body, "poison")
    channel = await amqp.channel()
    dead_letters = await channel.declare_queue(dead_letter_names(worker.queue)[1], passive=True)

    dead = await eventually(lambda: dead_letters.get(no_ack=True, fail=False), description="dead letter")

    assert str(dead.headers[REASON_HEADER]).startswith(reason)
    assert await fetchval(orders_database_url, "SELECT count(*) FROM inbox") == 0


async def never_ack(self: Acknowledgements, messages: Iterable[AbstractIncomingMessage]) -> None:
    """As if the process died right after its batch committed: the acks never go out."""
    await asyncio.Event().wait()


async def test_a_batch_committed_but_never_acked_is_redelivered_and_changes_nothing(
    orders_database_url: str, amqp_url: str, names: Names, notifier: Publisher, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = worker_settings(orders_database_url, amqp_url, names)
    pool: Pool = await asyncpg.create_pool(orders_database_url, min_size=1, max_size=1)
    try:
        await place_orders(pool, 3)
        order_ids = [UUID(str(row["id"])) for row in await pool.fetch("SELECT id FROM orders")]
    finally:
        await pool.close()
    with monkeypatch.context() as crash:
        crash.setattr(Acknowledgements, "ack", never_ack)
        async with TestServer(create_worker_app(settings)):
            for order_id in order_ids:
                await send(notifier, notification_sent(order_id), str(order_id))
            await eventually(
                lambda: fetchval(orders_database_url, "SELECT count(*) = 3 FROM orders WHERE status = 'notified'"),
                description="the batch committed",
            )
    notified_at = await fetchval(orders_database_url, "SELECT array_agg(notified_at ORDER BY id) FROM orders")
    duplicates = {"event_type": NotificationSentV1.event_type}
    duplicates_before = REGISTRY.get_sample_value("dozen_inbox_duplicates_total", duplicates) or 0
    acked_before = handled(settings.queue, "acked")

    # The process is gone, nothing acked: the broker redelivers all three, to a new process.
    async with TestServer(create_worker_app(settings)):
        await eventually(
            lambda: handled(settings.queue, "acked") == acked_before + 3,
            description="the redeliveries acked",
        )

    assert await fetchval(orders_database_url, "SELECT count(*) FROM inbox") == 3
    assert await fetchval(orders_database_url, "SELECT array_agg(notified_at ORDER BY id) FROM orders") == notified_at
    assert REGISTRY.get_sample_value("dozen_inbox_duplicates_total", duplicates) == duplicates_before + 3


async def test_a_database_that_does_not_answer_in_time_is_waited_out_not_held_against_the_message(
    orders_database_url: str, amqp_url: str, names: Names, notifier: Publisher, order_id: UUID
) -> None:
    """Statements timing out are the database's outage, as behind a blackholed link: the
    message is retried past its attempts without being dead-lettered, and marks its order
    once the database answers again."""
    settings = worker_settings(orders_database_url, amqp_url, names).model_copy(
        update={"db_command_timeout_seconds": 0.2}
    )

    def retries() -> float:
        return REGISTRY.get_sample_value("dozen_message_retries_total", {"queue": settings.queue}) or 0

    blocker = await asyncpg.connect(orders_database_url)
    try:
        async with TestServer(create_worker_app(settings)):
            transaction = blocker.transaction()
            await transaction.start()
            # Nobody else gets an answer about orders until this transaction ends.
            await blocker.execute("LOCK TABLE orders IN ACCESS EXCLUSIVE MODE")
            before = retries()
            await send(notifier, notification_sent(order_id), "n-1")
            await eventually(
                lambda: retries() >= before + 2 * settings.max_attempts, description="retried past its attempts"
            )
            await transaction.rollback()

            await eventually(
                lambda: fetchval(orders_database_url, "SELECT status = 'notified' FROM orders"),
                description="order notified once the database answers",
            )
            assert handled(settings.queue, "dead_lettered") == 0
    finally:
        await blocker.close()
