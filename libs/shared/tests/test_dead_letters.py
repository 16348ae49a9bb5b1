"""A consumer's dead-letter queue as the ``dlq`` one-offs see it: listed without taking, replayed once."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import aio_pika
import pytest
from aio_pika.abc import AbstractIncomingMessage, AbstractRobustConnection

from shared.messaging import Unprocessable, declare_consumer_queue
from shared.messaging.dead_letters import NoDeadLetterQueue, list_dead_letters, replay_dead_letters
from shared.testing import eventually
from shared.testing.amqp import AmqpNames

from .messaging_support import ROUTING_KEY, Topology, publisher, ready_messages, running_consumer


async def test_listing_takes_nothing_and_a_replay_after_the_fix_delivers_each_once(
    amqp: AbstractRobustConnection, amqp_url: str, amqp_names: AmqpNames
) -> None:
    topology = Topology(amqp_names)
    fixed = False
    handled: list[str | None] = []

    async def handler(message: AbstractIncomingMessage) -> None:
        if not fixed:
            raise Unprocessable("not yet")
        handled.append(message.message_id)

    consumer, declared = await running_consumer(amqp, topology, handler)
    try:
        events = await publisher(amqp, topology.exchange)
        for message_id in ("m-1", "m-2"):
            await events.publish(ROUTING_KEY, b'{"n": 1}', message_id=message_id)

        async def both_parked() -> list[dict[str, object]] | None:
            listed = await list_dead_letters(amqp_url, topology.queue, 10, connection_name="test-dlq")
            return listed if len(listed) == 2 else None

        listed = await eventually(both_parked, description="both dead-lettered")
        assert {entry["message_id"] for entry in listed} == {"m-1", "m-2"}
        assert {str(entry["reason"]) for entry in listed} == {"unprocessable: not yet"}
        assert await list_dead_letters(amqp_url, topology.queue, 1, connection_name="test-dlq") == listed[:1]
        assert await ready_messages(amqp, declared.dead_letter_queue.name) == 2, "listing took something"

        fixed = True
        assert await replay_dead_letters(amqp_url, topology.queue, 10, connection_name="test-dlq") == 2
        await eventually(lambda: len(handled) == 2, description="both handled after the replay")
    finally:
        await consumer.stop(timeout_seconds=5)

    assert sorted(map(str, handled)) == ["m-1", "m-2"]
    assert await list_dead_letters(amqp_url, topology.queue, 10, connection_name="test-dlq") == []


@pytest.mark.parametrize("command", [list_dead_letters, replay_dead_letters])
async def test_a_queue_nobody_declared_has_no_dead_letters_to_find(
    amqp_url: str, amqp_names: AmqpNames, command: Callable[..., Awaitable[object]]
) -> None:
    with pytest.raises(NoDeadLetterQueue, match=r"no dead-letter queue '.*\.dlq'"):
        await command(amqp_url, amqp_names("never-declared"), 10, connection_name="test-dlq")


async def test_the_brokers_own_dead_lettering_is_at_least_once(
    amqp: AbstractRobustConnection, amqp_names: AmqpNames
) -> None:
    """The backstop past the redelivery limit keeps a message it cannot place rather than drop
    it (RabbitMQ's default is at-most-once). Shown by the broker itself, which refuses to
    declare a queue again with arguments other than those it has. (When it retries a message
    with nowhere to go is its own schedule: in CI, not within ten seconds.)"""
    topology = Topology(amqp_names)
    declared = await declare_consumer_queue(
        await amqp.channel(), queue_name=topology.queue, exchange_name=topology.exchange, routing_keys=[ROUTING_KEY]
    )
    arguments = dict(declared.queue.arguments or {})
    assert arguments["x-dead-letter-strategy"] == "at-least-once"

    await (await amqp.channel()).declare_queue(topology.queue, durable=True, arguments=arguments)
    at_most_once = {name: value for name, value in arguments.items() if name != "x-dead-letter-strategy"}
    with pytest.raises(aio_pika.exceptions.ChannelPreconditionFailed, match="x-dead-letter-strategy"):
        await (await amqp.channel()).declare_queue(topology.queue, durable=True, arguments=at_most_once)
