"""Helpers shared by the orders tests."""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

from aio_pika.abc import AbstractQueue, AbstractRobustConnection

from orders.models import OrderLine, PlaceOrder
from orders.repository import place_order
from shared.db import Pool
from shared.events import NotificationSentV1, OrderCreatedV1, encode, new_event
from shared.messaging import declare_event_exchange
from shared.testing import fetchval

ORDERS_SCRIPT = str(Path(sys.executable).with_name("orders"))
# The credential orders web asks of its callers (ORDERS_API_TOKEN), and the header that carries it.
API_TOKEN = "test-orders-api-token-thirty-two-bytes"  # pragma: allowlist secret
AS_THE_GATEWAY = {"Authorization": f"Bearer {API_TOKEN}"}


def order_body(customer_id: str = "alice", quantity: int = 2) -> dict[str, Any]:
    return {
        "customer_id": customer_id,
        "currency": "EUR",
        "items": [{"sku": "BOOK-1", "quantity": quantity, "unit_price_cents": 1250}],
    }


class Names:
    """Exchange and queue names private to one test."""

    def __init__(self, unique: Callable[[str], str]) -> None:
        self.orders_exchange = unique("orders.events")
        self.notifier_exchange = unique("notifier.events")
        self.notification_queue = unique("orders.notification-sent")
        self.probe_queue = unique("probe.order-created")


async def bind_probe_queue(connection: AbstractRobustConnection, names: Names) -> AbstractQueue:
    """A queue standing in for the notifier: bound to orders.events for OrderCreated."""
    channel = await connection.channel()
    exchange = await declare_event_exchange(channel, names.orders_exchange)
    queue = await channel.declare_queue(names.probe_queue, durable=True)
    await queue.bind(exchange, OrderCreatedV1.event_type)
    return queue


async def every_row_marked(database_url: str) -> bool:
    """Whether the relay has marked every outbox row published."""
    return bool(await fetchval(database_url, "SELECT count(*) = 0 FROM outbox WHERE published_at IS NULL"))


async def place_orders(pool: Pool, count: int, customer_id: str = "alice") -> None:
    for number in range(count):
        request = PlaceOrder(
            customer_id=customer_id,
            currency="EUR",
            items=(OrderLine(sku="SKU-1", quantity=1 + number % 3, unit_price_cents=100),),
        )
        await place_order(pool, request, idempotency_key=f"key-{number}", event_source="/test", trace_context={})


def notification_sent(order_id: UUID, event_id: UUID | None = None) -> bytes:
    """The body of a NotificationSent for ``order_id``, as the notifier publishes it."""
    data = NotificationSentV1(
        notification_id=uuid4(),
        order_id=order_id,
        customer_id="alice",
        channel="email",
        message_id="<m@dozen>",
        sent_at=datetime.now(UTC),
    )
    return encode(new_event(data, source="/dozen/notifier", event_id=event_id or uuid4()))
