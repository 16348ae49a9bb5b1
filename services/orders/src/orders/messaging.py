"""What the orders worker consumes: NotificationSent, from the notifier's exchange."""

from __future__ import annotations

import logging
from typing import cast

from aio_pika.abc import AbstractIncomingMessage
from aiohttp import web
from opentelemetry import trace

from orders.keys import DB_POOL
from orders.metrics import INBOX_DUPLICATES, ORDER_LATENCY
from orders.repository import Notified, mark_notified
from shared.events import EventError, NotificationSentV1, decode
from shared.messaging import Handler, Unprocessable

log = logging.getLogger(__name__)

CONSUMED_EVENT = NotificationSentV1


def _record_latency(notified: Notified) -> None:
    span = trace.get_current_span().get_span_context()
    # The exemplar links a point of the latency histogram to the trace of that very order.
    exemplar = {"trace_id": trace.format_trace_id(span.trace_id)} if span.is_valid else None
    ORDER_LATENCY.observe((notified.notified_at - notified.created_at).total_seconds(), exemplar=exemplar)


def notification_handler(app: web.Application) -> Handler:
    pool = app[DB_POOL]
    INBOX_DUPLICATES.labels(CONSUMED_EVENT.event_type)  # a zero series from the start

    async def handle(message: AbstractIncomingMessage) -> None:
        try:
            event = decode(message.body, expect=CONSUMED_EVENT)
        except EventError as exc:
            raise Unprocessable(str(exc)) from exc
        data = cast(NotificationSentV1, event.data)
        try:
            notified = await mark_notified(pool, event_id=event.id, event_type=event.type, order_id=data.order_id)
        except LookupError as exc:
            raise Unprocessable(str(exc)) from exc
        if notified is None:
            INBOX_DUPLICATES.labels(event.type).inc()
        else:
            _record_latency(notified)
        log.info(
            "order notified" if notified else "duplicate event ignored",
            extra={"order_id": str(data.order_id), "event_id": str(event.id)},
        )

    return handle
