"""What the orders worker consumes: NotificationSent, from the notifier's exchange."""

from __future__ import annotations

import logging
from typing import cast

from aio_pika.abc import AbstractIncomingMessage
from aiohttp import web

from orders.keys import DB_POOL
from orders.metrics import INBOX_DUPLICATES
from orders.repository import mark_notified
from shared.events import EventError, NotificationSentV1, decode
from shared.messaging import Handler, Unprocessable

log = logging.getLogger(__name__)

CONSUMED_EVENT = NotificationSentV1


def notification_handler(app: web.Application) -> Handler:
    pool = app[DB_POOL]

    async def handle(message: AbstractIncomingMessage) -> None:
        try:
            event = decode(message.body, expect=CONSUMED_EVENT)
        except EventError as exc:
            raise Unprocessable(str(exc)) from exc
        data = cast(NotificationSentV1, event.data)
        try:
            first_time = await mark_notified(pool, event_id=event.id, event_type=event.type, order_id=data.order_id)
        except LookupError as exc:
            raise Unprocessable(str(exc)) from exc
        if not first_time:
            INBOX_DUPLICATES.labels(event.type).inc()
        log.info(
            "order notified" if first_time else "duplicate event ignored",
            extra={"order_id": str(data.order_id), "event_id": str(event.id)},
        )

    return handle
