"""Helpers for the messaging tests: a running consumer and queue inspection."""

from __future__ import annotations

from collections.abc import Callable

from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractRobustConnection

from shared.messaging import (
    BatchHandler,
    Consumer,
    ConsumerQueue,
    Handler,
    Publisher,
    RetryPolicy,
    declare_consumer_queue,
    declare_event_exchange,
    each,
    open_confirming_channel,
)

ROUTING_KEY = "dozen.order.created.v1"
FAST_RETRIES = RetryPolicy(max_attempts=3, first_backoff_seconds=0.01, max_backoff_seconds=0.02)


class Topology:
    def __init__(self, names: Callable[[str], str]) -> None:
        self.exchange = names("orders.events")
        self.queue = names("notifier.order-created")


async def publisher(connection: AbstractRobustConnection, exchange_name: str) -> Publisher:
    channel = await open_confirming_channel(connection)
    exchange = await declare_event_exchange(channel, exchange_name)
    return Publisher(exchange, confirm_timeout_seconds=5)


async def running_consumer(
    connection: AbstractRobustConnection,
    topology: Topology,
    handler: Handler | BatchHandler,
    *,
    batches: bool = False,
    retry: RetryPolicy = FAST_RETRIES,
    prefetch_count: int = 10,
    linger_seconds: float = 0.0,
) -> tuple[Consumer, ConsumerQueue]:
    channel = await connection.channel()
    await channel.set_qos(prefetch_count=prefetch_count)
    declared = await declare_consumer_queue(
        channel, queue_name=topology.queue, exchange_name=topology.exchange, routing_keys=[ROUTING_KEY]
    )
    consumer = Consumer(
        channel=channel,
        queue=declared.queue,
        dead_letter_exchange=declared.dead_letter_exchange,
        # A handler of one message runs through each(): the consumer only knows batches.
        handler=handler if batches else each(handler),  # type: ignore[arg-type]
        retry=retry,
        max_batch=prefetch_count,
        linger_seconds=linger_seconds,
    )
    await consumer.start()
    return consumer, declared


async def ready_messages(connection: AbstractRobustConnection, queue_name: str) -> int:
    """Messages waiting in the queue (not counting deliveries not yet acked)."""
    channel: AbstractChannel = await connection.channel()
    try:
        queue = await channel.declare_queue(queue_name, passive=True)
        result = queue.declaration_result
        return int(result.message_count or 0)
    finally:
        await channel.close()


async def take_one(connection: AbstractRobustConnection, queue_name: str) -> AbstractIncomingMessage | None:
    channel = await connection.channel()
    try:
        queue = await channel.declare_queue(queue_name, passive=True)
        return await queue.get(no_ack=True, fail=False)
    finally:
        await channel.close()
