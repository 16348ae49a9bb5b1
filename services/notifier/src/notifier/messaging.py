"""Handling OrderCreated: email the customer, record it, publish NotificationSent.

Effects are exactly-once per OrderCreated event id: the ``notifications`` row is keyed
by it, and the NotificationSent event's id is derived from it, so a redelivered event
sends no second email, stores no second row, and republishes the very same event
(which the orders worker's inbox drops).

The one accepted at-least-once edge: if the process dies after the SMTP server took
the email but before the row is committed, the redelivered event sends the email
again, with the same Message-ID so that mail clients can fold the two.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime
from typing import cast

from aio_pika.abc import AbstractIncomingMessage
from aiohttp import web
from opentelemetry import propagate

from notifier import repository
from notifier.keys import DB_POOL, EVENTS, MAILER, SETTINGS
from notifier.mail import PermanentSmtpFailure, UndeliverableCustomer, compose, message_id_for, recipient_for
from notifier.metrics import EMAILS_SENT
from notifier.repository import Notification
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
from shared.messaging import Handler, Unprocessable

log = logging.getLogger(__name__)

CONSUMED_EVENT = OrderCreatedV1
EVENT_SOURCE = "/dozen/notifier"
# Namespaces for ids derived from the OrderCreated event id (uuid5 is deterministic).
_NOTIFICATION_IDS = uuid.UUID("6f1c1c1e-4b0e-4c39-9f1e-0e8f2f7b6a01")
_NOTIFICATION_SENT_IDS = uuid.UUID("6f1c1c1e-4b0e-4c39-9f1e-0e8f2f7b6a02")


def order_created_handler(app: web.Application) -> Handler:
    settings = app[SETTINGS]
    pool = app[DB_POOL]
    mailer = app[MAILER]

    async def handle(message: AbstractIncomingMessage) -> None:
        try:
            event = cast(Envelope[OrderCreatedV1], decode(message.body, expect=CONSUMED_EVENT))
            recipient = recipient_for(event.data.customer_id, settings.recipient_domain)
        except (EventError, UndeliverableCustomer) as exc:
            raise Unprocessable(str(exc)) from exc
        async with repository.claim(pool, event.id) as claimed:
            notification = await claimed.notification()
            if notification is None:
                notification = _notification(event, recipient)
                try:
                    await mailer.send(compose(event, sender=settings.mail_from, recipient=recipient))
                except PermanentSmtpFailure as exc:
                    raise Unprocessable(str(exc)) from exc
                EMAILS_SENT.inc()
                # A crash exactly here, before the commit, resends the email on redelivery:
                # the one accepted at-least-once edge (same Message-ID, so clients fold them).
                await claimed.record(notification)
        await app[EVENTS].publish(
            NotificationSentV1.event_type,
            encode(_notification_sent(notification, event)),
            message_id=str(_notification_sent_id(notification)),
            content_type=CONTENT_TYPE,
            message_type=NotificationSentV1.event_type,
        )
        log.info("customer notified", extra={"order_id": str(event.data.order_id), "event_id": str(event.id)})

    return handle


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
