"""Helpers shared by the notifier tests."""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

from aio_pika.abc import AbstractQueue, AbstractRobustConnection

from shared.events import CONTENT_TYPE, Envelope, NotificationSentV1, OrderCreatedV1, OrderLineV1, encode, new_event
from shared.messaging import Publisher, declare_event_exchange, open_confirming_channel

NOTIFIER_SCRIPT = str(Path(sys.executable).with_name("notifier"))


class Names:
    def __init__(self, unique: Callable[[str], str]) -> None:
        self.orders_exchange = unique("orders.events")
        self.events_exchange = unique("notifier.events")
        self.queue = unique("notifier.order-created")
        self.probe_queue = unique("probe.notification-sent")


def order_created(customer_id: str = "alice", event_id: UUID | None = None) -> Envelope[OrderCreatedV1]:
    data = OrderCreatedV1(
        order_id=uuid4(),
        customer_id=customer_id,
        currency="EUR",
        items=(OrderLineV1(sku="BOOK-1", quantity=2, unit_price_cents=1250),),
        total_cents=2500,
        created_at=datetime.now(UTC),
    )
    return new_event(data, source="/dozen/orders", subject=str(data.order_id), event_id=event_id)


async def orders_publisher(connection: AbstractRobustConnection, names: Names) -> Publisher:
    """Publishes as the orders relay would, onto the orders exchange."""
    channel = await open_confirming_channel(connection)
    return Publisher(await declare_event_exchange(channel, names.orders_exchange), confirm_timeout_seconds=5)


async def publish(publisher: Publisher, body: bytes, message_id: str, routing_key: str | None = None) -> None:
    await publisher.publish(
        routing_key or OrderCreatedV1.event_type, body, message_id=message_id, content_type=CONTENT_TYPE
    )


async def publish_event(publisher: Publisher, event: Envelope[Any]) -> None:
    await publish(publisher, encode(event), str(event.id), event.type)


async def notification_sent_probe(connection: AbstractRobustConnection, names: Names) -> AbstractQueue:
    """Stands in for the orders worker: a queue bound to the notifier's exchange."""
    channel = await connection.channel()
    exchange = await declare_event_exchange(channel, names.events_exchange)
    queue = await channel.declare_queue(names.probe_queue, durable=True)
    await queue.bind(exchange, NotificationSentV1.event_type)
    return queue
