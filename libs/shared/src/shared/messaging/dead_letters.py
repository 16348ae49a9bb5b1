"""A consumer's dead-letter queue, for the ``dlq`` one-offs of every service: list, and replay after a fix."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aio_pika
import aio_pika.exceptions
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractQueue

from shared.messaging.consumer import (
    ATTEMPTS_HEADER,
    ORIGINAL_EXCHANGE_HEADER,
    ORIGINAL_QUEUE_HEADER,
    ORIGINAL_ROUTING_KEY_HEADER,
    REASON_HEADER,
)
from shared.messaging.publisher import Publisher
from shared.messaging.topology import dead_letter_names

log = logging.getLogger(__name__)

REPLAYED_HEADER = "x-replayed"
_DEAD_LETTER_HEADERS = (
    REASON_HEADER,
    ATTEMPTS_HEADER,
    ORIGINAL_QUEUE_HEADER,
    ORIGINAL_EXCHANGE_HEADER,
    ORIGINAL_ROUTING_KEY_HEADER,
    "x-death",
    "x-first-death-exchange",
    "x-first-death-queue",
    "x-first-death-reason",
    "x-last-death-exchange",
    "x-last-death-queue",
    "x-last-death-reason",
)


class NoDeadLetterQueue(LookupError):
    """The dead-letter queue does not exist: the queue's name is wrong, or no worker ever started."""


@asynccontextmanager
async def dead_letter_queue(
    amqp_url: str, queue: str, *, connection_name: str
) -> AsyncIterator[tuple[AbstractChannel, AbstractQueue]]:
    connection = await aio_pika.connect(amqp_url, client_properties={"connection_name": connection_name})
    try:
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        name = dead_letter_names(queue)[1]
        try:
            dlq = await channel.declare_queue(name, passive=True)
        except aio_pika.exceptions.ChannelNotFoundEntity:
            # Passive: an admin command must never create the worker's topology by itself.
            raise NoDeadLetterQueue(f"no dead-letter queue {name!r}") from None
        yield channel, dlq
    finally:
        await connection.close()


def describe(message: AbstractIncomingMessage) -> dict[str, Any]:
    headers = message.headers
    return {
        "message_id": message.message_id,
        "type": message.type,
        "reason": headers.get(REASON_HEADER) or _broker_reason(headers),
        "attempts": headers.get(ATTEMPTS_HEADER),
        "original_routing_key": headers.get(ORIGINAL_ROUTING_KEY_HEADER) or message.routing_key,
        "body": message.body[:500].decode(errors="replace"),
    }


def _broker_reason(headers: dict[str, Any]) -> str | None:
    # Dead-lettered by the broker itself (redelivery limit, rejection): its x-death says why.
    reason = headers.get("x-first-death-reason")
    return f"broker: {reason}" if reason else None


async def list_dead_letters(amqp_url: str, queue: str, limit: int, *, connection_name: str) -> list[dict[str, Any]]:
    """Look without taking: the deliveries are never acked, so closing returns them all."""
    async with dead_letter_queue(amqp_url, queue, connection_name=connection_name) as (_, dlq):
        found: list[dict[str, Any]] = []
        while len(found) < limit and (message := await dlq.get(no_ack=False, fail=False)) is not None:
            found.append(describe(message))
        return found


async def replay_dead_letters(amqp_url: str, queue: str, limit: int, *, connection_name: str) -> int:
    """Move up to ``limit`` messages back onto ``queue`` itself (not the topic exchange, so
    no other consumer sees them twice); each leaves the DLQ only once the broker confirmed it."""
    replayed = 0
    async with dead_letter_queue(amqp_url, queue, connection_name=connection_name) as (channel, dlq):
        # Only what was parked when the replay began: a message still failing comes back to
        # the tail meanwhile, and must not be replayed round and round.
        limit = min(limit, dlq.declaration_result.message_count or 0)
        publisher = Publisher(channel.default_exchange, confirm_timeout_seconds=10)
        while replayed < limit and (message := await dlq.get(no_ack=False, fail=False)) is not None:
            headers = {key: value for key, value in message.headers.items() if key not in _DEAD_LETTER_HEADERS}
            headers[REPLAYED_HEADER] = int(str(message.headers.get(REPLAYED_HEADER, 0))) + 1
            await publisher.publish(
                queue,
                message.body,
                message_id=message.message_id or "",
                content_type=message.content_type or "application/octet-stream",
                message_type=message.type,
                headers=headers,
                timestamp=message.timestamp,
            )
            await message.ack()
            replayed += 1
            log.info("replayed", extra={"message_id": message.message_id, "queue": queue})
    return replayed
