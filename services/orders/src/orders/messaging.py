"""What the orders worker consumes: NotificationSent, from the notifier's exchange, a batch at a time."""

from __future__ import annotations

import logging
from typing import cast
from uuid import UUID

from aiohttp import web
from opentelemetry import trace

from orders.keys import DB_POOL
from orders.metrics import INBOX_DUPLICATES, ORDER_LATENCY
from orders.repository import Notification, Notified, mark_notified
from shared.db import db_span
from shared.events import EventError, NotificationSentV1, decode
from shared.messaging import Batch, BatchHandler, Delivery, Outcomes, Unprocessable

log = logging.getLogger(__name__)

CONSUMED_EVENT = NotificationSentV1


def _record_latency(notified: Notified) -> None:
    span = trace.get_current_span().get_span_context()
    # The exemplar links a point of the latency histogram to the trace of that very order.
    exemplar = {"trace_id": trace.format_trace_id(span.trace_id)} if span.is_valid else None
    ORDER_LATENCY.observe((notified.notified_at - notified.created_at).total_seconds(), exemplar=exemplar)


def notification_handler(app: web.Application) -> BatchHandler:
    pool = app[DB_POOL]
    INBOX_DUPLICATES.labels(CONSUMED_EVENT.event_type)  # a zero series from the start

    async def handle(batch: Batch) -> Outcomes:
        outcomes: list[Exception | None] = [None] * len(batch.deliveries)
        # By event id, in id order (every batch takes its row locks in one order); the same
        # event twice in a batch is recorded once.
        events: dict[UUID, tuple[Notification, list[tuple[int, Delivery]]]] = {}
        for position, delivery in enumerate(batch.deliveries):
            try:
                event = decode(delivery.message.body, expect=CONSUMED_EVENT)
            except EventError as exc:
                outcomes[position] = Unprocessable(str(exc))
                continue
            order_id = cast(NotificationSentV1, event.data).order_id
            notification = Notification(event_id=event.id, event_type=event.type, order_id=order_id)
            events.setdefault(event.id, (notification, []))[1].append((position, delivery))
        if not events:
            return outcomes
        ordered = [events[event_id] for event_id in sorted(events)]
        with (
            Batch([deliveries[0][1] for _, deliveries in ordered]).traced() as links,
            db_span("INSERT inbox UPDATE orders", batch_size=len(ordered), links=links),
        ):
            marked = await mark_notified(pool, [notification for notification, _ in ordered])
        for notification, deliveries in ordered:
            if notification.event_id in marked.unknown_orders:
                for position, _ in deliveries:
                    outcomes[position] = Unprocessable(f"no order {notification.order_id}")
                continue
            notified = marked.notified.get(notification.event_id)
            # Every delivery but the one that notified the order now was a redelivery.
            redelivered = len(deliveries) - (1 if notified else 0)
            if redelivered:
                INBOX_DUPLICATES.labels(notification.event_type).inc(redelivered)
            with deliveries[0][1].traced():
                if notified is not None:
                    _record_latency(notified)
                log.info(
                    "order notified" if notified else "duplicate event ignored",
                    extra={"order_id": str(notification.order_id), "event_id": str(notification.event_id)},
                )
        return outcomes

    return handle
