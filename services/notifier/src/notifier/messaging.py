"""Handling OrderCreated, a batch at a time: email each customer, record the batch, publish
NotificationSent.

Effects are exactly-once per OrderCreated event id: the ``notifications`` row is keyed
by it, and the NotificationSent event's id is derived from it, so a redelivered event
sends no second email, stores no second row, and republishes the very same event
(which the orders worker's inbox drops).

A batch holds the advisory locks of its events in one transaction while its emails go out
(concurrently, over the mailer's sessions), records every sent one in the same transaction,
then publishes the follow-up events with their confirms awaited together. An email that
fails, a mailbox refusing for good, or an event that cannot be published fails only its own
message (the last retried until the broker takes it: ``TRANSIENT_FAILURES``). If the
recording fails, the batch is tried again without sending what was sent (``Unrecorded``).
The one accepted at-least-once edge: if the process dies after the SMTP server took an email
but before its row is committed, the redelivered event sends the email again, with the same
Message-ID so that mail clients can fold the two.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import cast
from uuid import UUID

from aiohttp import web
from opentelemetry import propagate

from notifier import repository
from notifier.keys import DB_POOL, EVENTS, MAILER, SETTINGS
from notifier.mail import (
    Mailer,
    PermanentSmtpFailure,
    Sender,
    UndeliverableCustomer,
    compose,
    message_id_for,
    recipient_for,
)
from notifier.metrics import EMAILS_SENT
from notifier.repository import Notification
from notifier.unrecorded import Unrecorded
from shared.db import DATABASE_OUTAGE, db_span
from shared.events import (
    CONTENT_TYPE,
    Envelope,
    EventError,
    NotificationSentV1,
    OrderCreatedV1,
    decode,
    encode,
    new_event,
)
from shared.messaging import Batch, BatchHandler, Delivery, Outcomes, Publisher, PublishFailed, Unprocessable

log = logging.getLogger(__name__)

CONSUMED_EVENT = OrderCreatedV1
# Retried for as long as they last, never counted against a message's attempts: the
# database's outage, and NotificationSent not taken by the broker (no queue bound yet on a
# fresh deploy, a confirm that did not come, a nack under an alarm). The email of such a
# message is already sent and recorded, so a retry only announces it again; dead-lettering
# it would leave a notified customer's order `accepted` until someone replays it.
TRANSIENT_FAILURES = (*DATABASE_OUTAGE, PublishFailed)
EVENT_SOURCE = "/dozen/notifier"
# Namespaces for ids derived from the OrderCreated event id (uuid5 is deterministic).
_NOTIFICATION_IDS = uuid.UUID("6f1c1c1e-4b0e-4c39-9f1e-0e8f2f7b6a01")
_NOTIFICATION_SENT_IDS = uuid.UUID("6f1c1c1e-4b0e-4c39-9f1e-0e8f2f7b6a02")


@dataclass
class _Order:
    """One OrderCreated event to notify for, and the batch positions of every delivery of it."""

    event: Envelope[OrderCreatedV1]
    recipient: str
    delivery: Delivery
    positions: list[int] = field(default_factory=list)


def order_created_handler(app: web.Application) -> BatchHandler:
    settings = app[SETTINGS]
    pool = app[DB_POOL]
    mailer = app[MAILER]
    events = app[EVENTS]
    sender = Sender.parse(settings.mail_from)
    unrecorded = Unrecorded()

    async def handle(batch: Batch) -> Outcomes:
        outcomes: list[Exception | None] = [None] * len(batch.deliveries)

        def fail(order: _Order, failure: Exception) -> None:
            for position in order.positions:
                outcomes[position] = failure

        orders: dict[UUID, _Order] = {}
        for position, delivery in enumerate(batch.deliveries):
            try:
                event = cast(Envelope[OrderCreatedV1], decode(delivery.message.body, expect=CONSUMED_EVENT))
                recipient = recipient_for(event.data.customer_id, settings.recipient_domain)
            except (EventError, UndeliverableCustomer) as exc:
                outcomes[position] = Unprocessable(str(exc))
                continue
            # The same event twice in one batch (published twice) is emailed once.
            orders.setdefault(event.id, _Order(event, recipient, delivery)).positions.append(position)
        if not orders:
            return outcomes

        with (
            Batch([order.delivery for order in orders.values()]).traced() as links,
            db_span("INSERT notifications", batch_size=len(orders), links=links),
        ):
            async with repository.claim(pool, list(orders)) as claimed:
                notified = await claimed.notifications()
                waiting = [order for event_id, order in orders.items() if event_id not in notified]
                sending = [order for order in waiting if unrecorded.get(order.event.id) is None]
                sent = await asyncio.gather(
                    *(_email(mailer, order, sender) for order in sending), return_exceptions=True
                )
                for order, result in zip(sending, sent, strict=True):
                    if isinstance(result, Notification):
                        EMAILS_SENT.inc()
                        unrecorded.sent(result)
                    elif isinstance(result, PermanentSmtpFailure):
                        fail(order, Unprocessable(str(result)))
                    elif isinstance(result, Exception):
                        fail(order, result)
                    else:
                        raise result  # cancelled: no outcome of the message
                recording = [found for order in waiting if (found := unrecorded.get(order.event.id)) is not None]
                # A crash before this commits resends those emails on redelivery: the one
                # accepted at-least-once edge (same Message-ID, so clients fold them).
                await claimed.record(recording)
            unrecorded.recorded([notification.order_created_event_id for notification in recording])
        notified |= {notification.order_created_event_id: notification for notification in recording}

        announced = [order for order in orders.values() if order.event.id in notified]
        published = await asyncio.gather(
            *(_announce(events, order, notified[order.event.id]) for order in announced), return_exceptions=True
        )
        for order, announcement in zip(announced, published, strict=True):
            if isinstance(announcement, Exception):
                fail(order, announcement)
            elif isinstance(announcement, BaseException):
                raise announcement
        return outcomes

    return handle


async def _email(mailer: Mailer, order: _Order, sender: Sender) -> Notification:
    with order.delivery.traced():
        await mailer.send(compose(order.event, sender=sender, recipient=order.recipient))
    return _notification(order.event, order.recipient)


async def _announce(events: Publisher, order: _Order, notification: Notification) -> None:
    with order.delivery.traced():
        await events.publish(
            NotificationSentV1.event_type,
            encode(_notification_sent(notification, order.event)),
            message_id=str(_notification_sent_id(notification)),
            content_type=CONTENT_TYPE,
            message_type=NotificationSentV1.event_type,
        )
        log.info(
            "customer notified", extra={"order_id": str(order.event.data.order_id), "event_id": str(order.event.id)}
        )


def _notification(event: Envelope[OrderCreatedV1], recipient: str) -> Notification:
    return Notification(
        id=uuid.uuid5(_NOTIFICATION_IDS, str(event.id)),
        order_created_event_id=event.id,
        order_id=event.data.order_id,
        customer_id=event.data.customer_id,
        channel="email",
        recipient=recipient,
        message_id=message_id_for(event.id),
        sent_at=datetime.now(UTC),
    )


def _notification_sent_id(notification: Notification) -> uuid.UUID:
    return uuid.uuid5(_NOTIFICATION_SENT_IDS, str(notification.id))


def _notification_sent(notification: Notification, cause: Envelope[OrderCreatedV1]) -> Envelope[NotificationSentV1]:
    trace_context: dict[str, str] = {}
    propagate.inject(trace_context)
    data = NotificationSentV1(
        notification_id=notification.id,
        order_id=notification.order_id,
        customer_id=notification.customer_id,
        channel="email",
        message_id=notification.message_id,
        sent_at=notification.sent_at,
    )
    return new_event(
        data,
        source=EVENT_SOURCE,
        subject=str(notification.order_id),
        event_id=_notification_sent_id(notification),
        time=notification.sent_at,
        # Continue the order's trace even where no span is active here.
        traceparent=trace_context.get("traceparent", cause.traceparent),
        tracestate=trace_context.get("tracestate", cause.tracestate),
    )
