"""Nameko-style topology: producers own topic exchanges, consumers own durable queues.

Each producer publishes to its own durable topic exchange (``orders.events``) with the
event type as routing key. Each consumer declares its own durable queue
(``notifier.order-created``), binds it to the producer's exchange, and owns a
dead-letter exchange and queue beside it (``….dlx`` / ``….dlq``) where messages it can
never process are parked with the reason, for inspection and replay.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from aio_pika import ExchangeType
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractQueue

# Quorum queues: replicated, and RabbitMQ's recommended durable queue type since 3.8.
QUEUE_TYPE = "quorum"


# Redeliveries (consumer died or stopped mid-message) before the broker dead-letters.
REDELIVERY_LIMIT = 20


def dead_letter_names(queue_name: str) -> tuple[str, str]:
    """(exchange, queue) where ``queue_name`` dead-letters to."""
    return f"{queue_name}.dlx", f"{queue_name}.dlq"


@dataclass(frozen=True)
class ConsumerQueue:
    queue: AbstractQueue
    dead_letter_exchange: AbstractExchange
    dead_letter_queue: AbstractQueue


async def declare_event_exchange(channel: AbstractChannel, name: str) -> AbstractExchange:
    return await channel.declare_exchange(name, ExchangeType.TOPIC, durable=True)


async def declare_consumer_queue(
    channel: AbstractChannel, *, queue_name: str, exchange_name: str, routing_keys: Iterable[str]
) -> ConsumerQueue:
    """The consumer's queue bound to ``exchange_name``, with its dead-letter pair. Idempotent."""
    dlx_name, dlq_name = dead_letter_names(queue_name)
    dead_letter_exchange = await channel.declare_exchange(dlx_name, ExchangeType.FANOUT, durable=True)
    dead_letter_queue = await channel.declare_queue(dlq_name, durable=True, arguments={"x-queue-type": QUEUE_TYPE})
    await dead_letter_queue.bind(dead_letter_exchange)
    # Declaring the producer's exchange too lets either side start first.
    exchange = await declare_event_exchange(channel, exchange_name)
    queue = await channel.declare_queue(
        queue_name,
        durable=True,
        arguments={
            "x-queue-type": QUEUE_TYPE,
            # A backstop: whatever the broker itself rejects still lands beside the queue.
            "x-dead-letter-exchange": dlx_name,
            # ...at least once: kept until the dead-letter queue confirms it, never dropped when
            # it cannot (RabbitMQ's default is at-most-once). The strategy needs the overflow
            # mode that refuses new publishes instead of dropping the oldest.
            "x-dead-letter-strategy": "at-least-once",
            "x-overflow": "reject-publish",
            # A message that crashes its consumer every time must not loop forever.
            "x-delivery-limit": REDELIVERY_LIMIT,
        },
    )
    for routing_key in routing_keys:
        await queue.bind(exchange, routing_key)
    return ConsumerQueue(queue, dead_letter_exchange, dead_letter_queue)
