"""The notifier worker against real PostgreSQL, RabbitMQ and an SMTP server."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterable
from uuid import uuid4

import pytest
from aio_pika.abc import AbstractIncomingMessage, AbstractQueue, AbstractRobustConnection
from aiohttp.test_utils import TestServer
from prometheus_client import REGISTRY

from notifier.app import create_worker_app
from notifier.settings import WorkerSettings
from shared.events import NotificationSentV1, OrderCreatedV1, decode
from shared.messaging import ATTEMPTS_HEADER, REASON_HEADER, Publisher, dead_letter_names
from shared.messaging.acks import Acknowledgements
from shared.testing import drain, eventually, execute, fetchval
from shared.testing.smtp import SmtpSink

from .support import (
    Names,
    notification_sent_probe,
    order_created,
    orders_publisher,
    publish,
    publish_event,
)


def worker_settings(database_url: str, amqp_url: str, smtp_url: str, names: Names) -> WorkerSettings:
    return WorkerSettings(
        database_url=database_url,
        amqp_url=amqp_url,
        smtp_url=smtp_url,
        port=1,
        queue=names.queue,
        orders_exchange=names.orders_exchange,
        events_exchange=names.events_exchange,
        max_attempts=3,
        first_backoff_seconds=0.01,
        max_backoff_seconds=0.02,
    )


@pytest.fixture
async def worker(
    notifier_database_url: str, amqp_url: str, smtp_sink: SmtpSink, names: Names, amqp: AbstractRobustConnection
) -> AsyncIterator[WorkerSettings]:
    # The orders worker's queue must exist, or NotificationSent would be unroutable.
    await notification_sent_probe(amqp, names)
    settings = worker_settings(notifier_database_url, amqp_url, smtp_sink.url, names)
    async with TestServer(create_worker_app(settings)):
        yield settings


@pytest.fixture
async def orders(amqp: AbstractRobustConnection, names: Names) -> Publisher:
    return await orders_publisher(amqp, names)


@pytest.fixture
async def probe(amqp: AbstractRobustConnection, names: Names) -> AbstractQueue:
    return await notification_sent_probe(amqp, names)


async def dead_letters(amqp: AbstractRobustConnection, queue: str) -> AbstractQueue:
    channel = await amqp.channel()
    return await channel.declare_queue(dead_letter_names(queue)[1], passive=True)


async def test_order_created_sends_one_email_records_it_and_publishes_notification_sent(
    worker: WorkerSettings, orders: Publisher, probe: AbstractQueue, smtp_sink: SmtpSink, notifier_database_url: str
) -> None:
    event = order_created("alice")

    await publish_event(orders, event)

    [sent] = await eventually(lambda: drain(probe), description="NotificationSent published")
    [email] = smtp_sink.received()
    assert email["To"] == "alice@customers.dozen.test"
    assert email["Message-ID"] == f"<{event.id}@notifier.dozen>"
    assert email["X-Dozen-Order-Id"] == str(event.data.order_id)
    assert "25.00 EUR" in email.get_content()
    notification = decode(sent.body, expect=NotificationSentV1).data
    assert isinstance(notification, NotificationSentV1)
    assert notification.order_id == event.data.order_id
    assert notification.message_id == email["Message-ID"]
    assert sent.message_id == json.loads(sent.body)["id"]
    assert await fetchval(notifier_database_url, "SELECT count(*) FROM notifications") == 1


async def test_redelivered_event_sends_nothing_new_and_republishes_the_same_event(
    worker: WorkerSettings, orders: Publisher, probe: AbstractQueue, smtp_sink: SmtpSink, notifier_database_url: str
) -> None:
    event = order_created("alice")
    acked = {"queue": worker.queue, "outcome": "acked"}
    acked_before = REGISTRY.get_sample_value("dozen_messages_handled_total", acked) or 0

    for _ in range(3):
        await publish_event(orders, event)

    await eventually(
        lambda: REGISTRY.get_sample_value("dozen_messages_handled_total", acked) == acked_before + 3,
        description="every delivery acked",
    )
    received = await drain(probe)
    assert len(smtp_sink.received()) == 1
    assert await fetchval(notifier_database_url, "SELECT count(*) FROM notifications") == 1
    # Once per batch the copies arrived in: the very same event each time.
    assert 1 <= len(received) <= 3
    assert len({message.message_id for message in received}) == 1
    assert len({message.body for message in received}) == 1


async def test_transient_smtp_failures_are_retried(
    worker: WorkerSettings, orders: Publisher, probe: AbstractQueue, smtp_sink: SmtpSink
) -> None:
    smtp_sink.refuse_next(2)
    retries_before = REGISTRY.get_sample_value("dozen_message_retries_total", {"queue": worker.queue}) or 0

    await publish_event(orders, order_created("alice"))

    await eventually(lambda: drain(probe), description="NotificationSent after retries")
    assert len(smtp_sink.received()) == 1
    assert REGISTRY.get_sample_value("dozen_message_retries_total", {"queue": worker.queue}) == retries_before + 2


async def test_smtp_down_past_the_limit_dead_letters_and_records_nothing(
    worker: WorkerSettings,
    orders: Publisher,
    amqp: AbstractRobustConnection,
    smtp_sink: SmtpSink,
    notifier_database_url: str,
) -> None:
    smtp_sink.refuse_all()
    event = order_created("alice")

    await publish_event(orders, event)

    dlq = await dead_letters(amqp, worker.queue)
    dead = await eventually(lambda: dlq.get(no_ack=True, fail=False), description="dead letter")
    assert dead.message_id == str(event.id)
    assert dead.headers[ATTEMPTS_HEADER] == 3
    assert str(dead.headers[REASON_HEADER]).startswith("failed 3 times, last: SMTP")
    assert await fetchval(notifier_database_url, "SELECT count(*) FROM notifications") == 0


async def test_permanent_smtp_refusal_dead_letters_at_once(
    worker: WorkerSettings, orders: Publisher, amqp: AbstractRobustConnection, smtp_sink: SmtpSink
) -> None:
    smtp_sink.refuse_all("550 5.1.1 no such mailbox")

    await publish_event(orders, order_created("alice"))

    dlq = await dead_letters(amqp, worker.queue)
    dead = await eventually(lambda: dlq.get(no_ack=True, fail=False), description="dead letter")
    assert dead.headers[ATTEMPTS_HEADER] == 1
    assert "550" in str(dead.headers[REASON_HEADER])


@pytest.mark.parametrize(
    ("body", "routing_key", "reason"),
    [
        (b"{not json", OrderCreatedV1.event_type, "unprocessable: body is not JSON"),
        (
            json.dumps({"type": "dozen.order.created.v2", "id": str(uuid4())}).encode(),
            OrderCreatedV1.event_type,
            "unprocessable: no contract for event type 'dozen.order.created.v2'",
        ),
        (
            json.dumps({"type": NotificationSentV1.event_type}).encode(),
            OrderCreatedV1.event_type,
            "unprocessable: expected 'dozen.order.created.v1'",
        ),
    ],
    ids=["unparseable", "unknown-version", "wrong-type"],
)
async def test_poison_is_dead_lettered_at_once_and_blocks_nothing(
    worker: WorkerSettings,
    orders: Publisher,
    probe: AbstractQueue,
    amqp: AbstractRobustConnection,
    body: bytes,
    routing_key: str,
    reason: str,
) -> None:
    await publish(orders, body, "poison", routing_key)
    await publish_event(orders, order_created("bob"))

    await eventually(lambda: drain(probe), description="the good event handled")
    dlq = await dead_letters(amqp, worker.queue)
    dead = await eventually(lambda: dlq.get(no_ack=True, fail=False), description="dead letter")
    assert dead.message_id == "poison"
    assert str(dead.headers[REASON_HEADER]).startswith(reason)
    assert dead.headers[ATTEMPTS_HEADER] == 1


async def test_customer_id_that_cannot_be_an_address_is_dead_lettered(
    worker: WorkerSettings, orders: Publisher, amqp: AbstractRobustConnection, smtp_sink: SmtpSink
) -> None:
    await publish_event(orders, order_created("alice@evil.example, bob"))

    dlq = await dead_letters(amqp, worker.queue)
    dead = await eventually(lambda: dlq.get(no_ack=True, fail=False), description="dead letter")
    assert "cannot form an email address" in str(dead.headers[REASON_HEADER])
    assert smtp_sink.received() == []


async def never_ack(self: Acknowledgements, messages: Iterable[AbstractIncomingMessage]) -> None:
    """As if the process died right after its batch committed: the acks never go out."""
    await asyncio.Event().wait()


async def test_a_batch_committed_but_never_acked_is_redelivered_and_changes_nothing(
    notifier_database_url: str,
    amqp_url: str,
    smtp_sink: SmtpSink,
    names: Names,
    orders: Publisher,
    probe: AbstractQueue,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = worker_settings(notifier_database_url, amqp_url, smtp_sink.url, names).model_copy(
        update={"shutdown_timeout_seconds": 0.5}
    )
    with monkeypatch.context() as crash:
        crash.setattr(Acknowledgements, "ack", never_ack)
        async with TestServer(create_worker_app(settings)):
            for number in range(3):
                await publish_event(orders, order_created(f"customer-{number}"))
            await eventually(lambda: len(smtp_sink.received()) == 3, description="three emails sent")
            await eventually(
                lambda: fetchval(notifier_database_url, "SELECT count(*) = 3 FROM notifications"),
                description="their rows committed",
            )
    # The process is gone, nothing acked: the broker redelivers all three, to a new process.
    acked = {"queue": settings.queue, "outcome": "acked"}
    acked_before = REGISTRY.get_sample_value("dozen_messages_handled_total", acked) or 0
    async with TestServer(create_worker_app(settings)):
        await eventually(
            lambda: REGISTRY.get_sample_value("dozen_messages_handled_total", acked) == acked_before + 3,
            description="the redeliveries acked",
        )

    assert len(smtp_sink.received()) == 3
    assert await fetchval(notifier_database_url, "SELECT count(*) FROM notifications") == 3
    announced = await drain(probe)
    assert {message.message_id for message in announced} == {str(decode(message.body).id) for message in announced}
    assert len({message.message_id for message in announced}) == 3


async def test_when_recording_fails_after_the_emails_went_out_the_retry_sends_none_again(
    worker: WorkerSettings, orders: Publisher, probe: AbstractQueue, smtp_sink: SmtpSink, notifier_database_url: str
) -> None:
    # The database takes the emails' rows only on the second try. A sequence counts the tries:
    # unlike a row, its value survives the failed transaction.
    await execute(
        notifier_database_url,
        """
        CREATE SEQUENCE recording_tries;
        CREATE FUNCTION refuse_once() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF nextval('recording_tries') = 1 THEN
                RAISE EXCEPTION 'injected failure after the emails went out';
            END IF;
            RETURN NEW;
        END; $$;
        CREATE TRIGGER refuse_once BEFORE INSERT ON notifications FOR EACH ROW EXECUTE FUNCTION refuse_once();
        """,
    )

    await publish_event(orders, order_created("alice"))

    await eventually(lambda: drain(probe), description="NotificationSent after the retry")
    assert len(smtp_sink.received()) == 1
    assert await fetchval(notifier_database_url, "SELECT count(*) FROM notifications") == 1


async def test_notification_sent_with_no_queue_to_take_it_waits_for_one_instead_of_dead_lettering(
    notifier_database_url: str,
    amqp_url: str,
    smtp_sink: SmtpSink,
    names: Names,
    amqp: AbstractRobustConnection,
    orders: Publisher,
) -> None:
    """A fresh deploy where the orders worker has not declared its queue yet: the customer is
    emailed once, and the order's NotificationSent is retried for as long as it is unroutable,
    past the message's attempts, not dead-lettered with the order left unnotified."""
    settings = worker_settings(notifier_database_url, amqp_url, smtp_sink.url, names)

    def retries() -> float:
        return REGISTRY.get_sample_value("dozen_message_retries_total", {"queue": settings.queue}) or 0

    async with TestServer(create_worker_app(settings)):
        before = retries()
        await publish_event(orders, order_created("alice"))

        await eventually(
            lambda: retries() >= before + 2 * settings.max_attempts, description="retried past its attempts"
        )
        dlq = await dead_letters(amqp, settings.queue)
        assert await dlq.get(no_ack=True, fail=False) is None
        probe = await notification_sent_probe(amqp, names)
        [sent] = await eventually(lambda: drain(probe), description="NotificationSent once a queue takes it")

    assert decode(sent.body, expect=NotificationSentV1).type == NotificationSentV1.event_type
    assert len(smtp_sink.received()) == 1
