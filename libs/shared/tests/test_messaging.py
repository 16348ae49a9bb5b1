"""Publishing and consuming against a real RabbitMQ, each test on its own exchange and queues."""

from __future__ import annotations

import asyncio

import aio_pika
import pytest
from aio_pika.abc import AbstractIncomingMessage, AbstractRobustConnection
from prometheus_client import REGISTRY

from shared.messaging import (
    ATTEMPTS_HEADER,
    ORIGINAL_QUEUE_HEADER,
    ORIGINAL_ROUTING_KEY_HEADER,
    REASON_HEADER,
    Batch,
    Nacked,
    Publisher,
    RetryPolicy,
    Unprocessable,
    Unroutable,
    dead_letter_names,
    declare_event_exchange,
    each,
    open_confirming_channel,
)
from shared.testing import eventually
from shared.testing.amqp import AmqpNames

from .messaging_support import ROUTING_KEY, Topology, publisher, ready_messages, running_consumer, take_one


@pytest.fixture
def connection(amqp: AbstractRobustConnection) -> AbstractRobustConnection:
    return amqp


@pytest.fixture
def topology(amqp_names: AmqpNames) -> Topology:
    return Topology(amqp_names)


async def publish(publisher: Publisher, message_id: str, body: bytes = b'{"n": 1}') -> None:
    await publisher.publish(ROUTING_KEY, body, message_id=message_id, headers={"traceparent": "00-abc"})


async def test_published_message_is_consumed_and_acked(
    connection: AbstractRobustConnection, topology: Topology
) -> None:
    received: list[AbstractIncomingMessage] = []

    async def handler(message: AbstractIncomingMessage) -> None:
        received.append(message)

    consumer, _ = await running_consumer(connection, topology, handler)
    await publish(await publisher(connection, topology.exchange), "m-1", b'{"order": 1}')

    await eventually(lambda: received, description="message consumed")
    await consumer.stop(timeout_seconds=5)

    [message] = received
    assert message.body == b'{"order": 1}'
    assert message.message_id == "m-1"
    assert message.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
    assert message.headers["traceparent"] == "00-abc"
    # Acked: closing the consumer's channel did not put it back.
    assert await ready_messages(connection, topology.queue) == 0


async def test_publish_to_an_unroutable_key_raises(connection: AbstractRobustConnection, topology: Topology) -> None:
    lonely = await publisher(connection, topology.exchange)

    with pytest.raises(Unroutable, match=ROUTING_KEY):
        await publish(lonely, "m-lost")


async def test_publish_the_broker_refuses_raises(connection: AbstractRobustConnection, amqp_names: AmqpNames) -> None:
    channel = await open_confirming_channel(connection)
    exchange = await declare_event_exchange(channel, amqp_names("orders.events"))
    full = await channel.declare_queue(
        amqp_names("full"), durable=True, arguments={"x-max-length": 1, "x-overflow": "reject-publish"}
    )
    await full.bind(exchange, ROUTING_KEY)
    confirmed = Publisher(exchange, confirm_timeout_seconds=5)
    await publish(confirmed, "m-1")

    with pytest.raises(Nacked, match="m-2"):
        await publish(confirmed, "m-2")


async def test_failing_handler_is_retried_then_dead_lettered_with_the_reason(
    connection: AbstractRobustConnection, topology: Topology
) -> None:
    calls: list[str | None] = []

    async def handler(message: AbstractIncomingMessage) -> None:
        calls.append(message.message_id)
        raise ConnectionError("smtp down")

    consumer, declared = await running_consumer(connection, topology, handler)
    await publish(await publisher(connection, topology.exchange), "m-dead", b'{"keep": "me"}')

    dead = await eventually(lambda: take_one(connection, declared.dead_letter_queue.name), description="dead letter")
    await consumer.stop(timeout_seconds=5)

    assert calls == ["m-dead"] * 3
    assert dead.body == b'{"keep": "me"}'
    assert dead.message_id == "m-dead"
    assert dead.headers[REASON_HEADER] == "failed 3 times, last: ConnectionError: smtp down"
    assert dead.headers[ATTEMPTS_HEADER] == 3
    assert dead.headers[ORIGINAL_QUEUE_HEADER] == topology.queue
    assert dead.headers[ORIGINAL_ROUTING_KEY_HEADER] == ROUTING_KEY
    assert dead.headers["traceparent"] == "00-abc"
    assert await ready_messages(connection, topology.queue) == 0


async def test_handler_that_recovers_within_the_limit_is_acked(
    connection: AbstractRobustConnection, topology: Topology
) -> None:
    calls = 0

    async def flaky(message: AbstractIncomingMessage) -> None:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise ConnectionError("transient")

    retries_before = REGISTRY.get_sample_value("dozen_message_retries_total", {"queue": topology.queue}) or 0
    consumer, declared = await running_consumer(connection, topology, flaky)
    await publish(await publisher(connection, topology.exchange), "m-flaky")

    await eventually(
        lambda: REGISTRY.get_sample_value(
            "dozen_messages_handled_total", {"queue": topology.queue, "outcome": "acked"}
        ),
        description="acked after retries",
    )
    await consumer.stop(timeout_seconds=5)

    assert calls == 3
    assert REGISTRY.get_sample_value("dozen_message_retries_total", {"queue": topology.queue}) == retries_before + 2
    assert await ready_messages(connection, topology.queue) == 0
    assert await ready_messages(connection, declared.dead_letter_queue.name) == 0


async def test_a_dependency_outage_is_waited_out_without_spending_the_messages_attempts(
    connection: AbstractRobustConnection, topology: Topology
) -> None:
    calls = 0

    async def database_down_for_a_while(message: AbstractIncomingMessage) -> None:
        nonlocal calls
        calls += 1
        if calls <= 8:  # far past max_attempts (3): an outage, not a bad message
            raise ConnectionRefusedError("database down")

    outage_tolerant = RetryPolicy(
        max_attempts=3, first_backoff_seconds=0.01, max_backoff_seconds=0.05, transient=(ConnectionRefusedError,)
    )
    consumer, declared = await running_consumer(connection, topology, database_down_for_a_while, retry=outage_tolerant)
    await publish(await publisher(connection, topology.exchange), "m-waits")

    await eventually(
        lambda: REGISTRY.get_sample_value(
            "dozen_messages_handled_total", {"queue": topology.queue, "outcome": "acked"}
        ),
        description="acked once the outage ended",
    )
    await consumer.stop(timeout_seconds=5)

    assert calls == 9
    assert await ready_messages(connection, declared.dead_letter_queue.name) == 0


def test_an_outage_is_tried_again_every_few_seconds_however_long_while_a_failing_message_backs_off_further() -> None:
    # The consumers' defaults: a message failing on its own waits up to 30 s between tries,
    # but an outage waited that long would leave the pipeline idle for half a minute after
    # the database came back (seen: a 60 s blackhole, recovered in 28.8 s).
    policy = RetryPolicy(first_backoff_seconds=0.5, max_backoff_seconds=30.0)
    assert max(policy.backoff_seconds(failures, outage=True) for failures in range(1, 40)) <= 2.0
    assert min(policy.backoff_seconds(10) for _ in range(20)) >= 15.0
    assert policy.backoff_seconds(1, outage=True) <= 0.5, "the first tries as quick as ever"


async def test_poison_message_is_dead_lettered_at_once_and_blocks_nothing(
    connection: AbstractRobustConnection, topology: Topology
) -> None:
    handled: list[bytes] = []

    async def handler(message: AbstractIncomingMessage) -> None:
        if message.body == b"not json":
            raise Unprocessable("body is not JSON")
        handled.append(message.body)

    consumer, declared = await running_consumer(connection, topology, handler, prefetch_count=1)
    events = await publisher(connection, topology.exchange)
    await publish(events, "m-poison", b"not json")
    await publish(events, "m-good", b'{"fine": true}')

    await eventually(lambda: handled, description="the good message handled")
    dead = await eventually(lambda: take_one(connection, declared.dead_letter_queue.name), description="dead letter")
    await consumer.stop(timeout_seconds=5)

    assert handled == [b'{"fine": true}']
    assert dead.message_id == "m-poison"
    assert dead.headers[REASON_HEADER] == "unprocessable: body is not JSON"
    assert dead.headers[ATTEMPTS_HEADER] == 1


async def test_graceful_stop_finishes_the_message_in_flight_and_takes_no_new_one(
    connection: AbstractRobustConnection, topology: Topology
) -> None:
    release = asyncio.Event()
    started: list[str | None] = []
    finished: list[str | None] = []

    async def handler(message: AbstractIncomingMessage) -> None:
        started.append(message.message_id)
        await release.wait()
        finished.append(message.message_id)

    # Prefetch 2: the broker would hand over the second message at once if still consuming.
    consumer, _ = await running_consumer(connection, topology, handler, prefetch_count=2)
    events = await publisher(connection, topology.exchange)
    await publish(events, "m-in-flight")
    await eventually(lambda: started, description="handler started")

    stopping = asyncio.create_task(consumer.stop(timeout_seconds=10))
    await eventually(lambda: consumer.stopping, description="stop began")
    await publish(events, "m-after-stop")
    release.set()
    await stopping

    assert started == finished == ["m-in-flight"]
    left = await take_one(connection, topology.queue)
    assert left is not None
    assert left.message_id == "m-after-stop"


async def test_message_still_in_flight_at_the_deadline_goes_back_to_the_queue(
    connection: AbstractRobustConnection, topology: Topology
) -> None:
    started = asyncio.Event()

    async def stuck(message: AbstractIncomingMessage) -> None:
        started.set()
        await asyncio.Event().wait()

    consumer, declared = await running_consumer(connection, topology, stuck)
    await publish(await publisher(connection, topology.exchange), "m-stuck")
    await asyncio.wait_for(started.wait(), timeout=5)

    await consumer.stop(timeout_seconds=0.2)

    returned = await eventually(lambda: take_one(connection, topology.queue), description="message returned")
    assert returned.message_id == "m-stuck"
    assert returned.redelivered
    assert await ready_messages(connection, declared.dead_letter_queue.name) == 0


async def test_stopping_during_a_retry_backoff_returns_the_message_at_once(
    connection: AbstractRobustConnection, topology: Topology
) -> None:
    failed = asyncio.Event()

    async def failing(message: AbstractIncomingMessage) -> None:
        failed.set()
        raise ConnectionError("down")

    slow_retries = RetryPolicy(max_attempts=5, first_backoff_seconds=60, max_backoff_seconds=60)
    consumer, declared = await running_consumer(connection, topology, failing, retry=slow_retries)
    await publish(await publisher(connection, topology.exchange), "m-backoff")
    await asyncio.wait_for(failed.wait(), timeout=5)

    # Well under the 30 s minimum backoff: the stop interrupts the wait.
    await asyncio.wait_for(consumer.stop(timeout_seconds=10), timeout=5)

    returned = await eventually(lambda: take_one(connection, topology.queue), description="message returned")
    assert returned.message_id == "m-backoff"
    assert await ready_messages(connection, declared.dead_letter_queue.name) == 0


def test_dead_letter_names_sit_beside_the_queue() -> None:
    assert dead_letter_names("notifier.order-created") == (
        "notifier.order-created.dlx",
        "notifier.order-created.dlq",
    )


async def queued(connection: AbstractRobustConnection, topology: Topology, bodies: dict[str, bytes]) -> None:
    """The consumer's queue declared, and these messages waiting in it before anyone consumes."""
    consumer, _ = await running_consumer(connection, topology, each(lambda message: asyncio.sleep(0)))
    await consumer.stop(timeout_seconds=5)
    events = await publisher(connection, topology.exchange)
    await asyncio.gather(*(publish(events, message_id, body) for message_id, body in bodies.items()))


class Batches:
    """A batch handler that commits everything, and remembers the message ids of each batch."""

    def __init__(self) -> None:
        self.seen: list[list[str | None]] = []

    async def __call__(self, batch: Batch) -> list[Exception | None]:
        self.seen.append([message.message_id for message in batch.messages])
        return [None] * len(batch.messages)


async def test_what_has_arrived_is_handled_as_one_batch_and_acked_together(
    connection: AbstractRobustConnection, topology: Topology
) -> None:
    batches = Batches()
    await queued(connection, topology, {f"m-{number}": b"{}" for number in range(10)})
    consumer, _ = await running_consumer(connection, topology, batches, batches=True, prefetch_count=10)

    await eventually(lambda: sum(len(batch) for batch in batches.seen) == 10, description="all ten handled")
    await consumer.stop(timeout_seconds=5)

    assert max(len(batch) for batch in batches.seen) > 1, batches.seen
    assert sorted(str(message) for batch in batches.seen for message in batch) == sorted(f"m-{n}" for n in range(10))
    # Acked: closing the consumer's channel put nothing back.
    assert await ready_messages(connection, topology.queue) == 0


async def test_a_poison_message_in_a_batch_is_dead_lettered_and_the_others_are_acked(
    connection: AbstractRobustConnection, topology: Topology
) -> None:
    committed: list[str | None] = []

    async def handler(batch: Batch) -> list[Exception | None]:
        outcomes: list[Exception | None] = []
        for message in batch.messages:
            if message.body == b"not json":
                outcomes.append(Unprocessable("body is not JSON"))
            else:
                committed.append(message.message_id)
                outcomes.append(None)
        return outcomes

    await queued(connection, topology, {"m-1": b"{}", "m-poison": b"not json", "m-3": b"{}"})
    consumer, declared = await running_consumer(connection, topology, handler, batches=True)

    dead = await eventually(lambda: take_one(connection, declared.dead_letter_queue.name), description="dead letter")
    await eventually(lambda: len(committed) == 2, description="the two good ones committed")
    await consumer.stop(timeout_seconds=5)

    assert sorted(map(str, committed)) == ["m-1", "m-3"]
    assert dead.message_id == "m-poison"
    assert dead.headers[REASON_HEADER] == "unprocessable: body is not JSON"
    assert await ready_messages(connection, topology.queue) == 0


async def test_a_batch_failing_as_a_whole_is_tried_message_by_message_and_only_the_culprit_dead_lettered(
    connection: AbstractRobustConnection, topology: Topology
) -> None:
    batch_sizes: list[int] = []
    committed: list[str | None] = []

    async def handler(batch: Batch) -> list[Exception | None]:
        # Like one transaction that a single bad row aborts for every row in it.
        batch_sizes.append(len(batch.messages))
        if any(message.body == b"breaks the transaction" for message in batch.messages):
            raise ValueError("constraint violated")
        committed.extend(message.message_id for message in batch.messages)
        return [None] * len(batch.messages)

    await queued(connection, topology, {"m-1": b"{}", "m-bad": b"breaks the transaction", "m-3": b"{}", "m-4": b"{}"})
    consumer, declared = await running_consumer(connection, topology, handler, batches=True)

    dead = await eventually(lambda: take_one(connection, declared.dead_letter_queue.name), description="dead letter")
    await eventually(lambda: len(committed) == 3, description="the innocent ones committed")
    await consumer.stop(timeout_seconds=5)

    assert max(batch_sizes) > 1, batch_sizes
    assert sorted(map(str, committed)) == ["m-1", "m-3", "m-4"]
    assert dead.message_id == "m-bad"
    assert dead.headers[REASON_HEADER] == "failed 3 times, last: ValueError: constraint violated"
    assert await ready_messages(connection, topology.queue) == 0


async def test_a_later_batch_is_acked_without_acking_a_message_still_retrying_before_it(
    connection: AbstractRobustConnection, topology: Topology
) -> None:
    retrying = asyncio.Event()
    committed: list[str | None] = []

    async def handler(message: AbstractIncomingMessage) -> None:
        if message.message_id == "m-first":
            retrying.set()
            raise ConnectionError("its mail server is down")
        committed.append(message.message_id)

    slow_retries = RetryPolicy(max_attempts=5, first_backoff_seconds=60, max_backoff_seconds=60)
    consumer, declared = await running_consumer(connection, topology, handler, retry=slow_retries)
    events = await publisher(connection, topology.exchange)
    await publish(events, "m-first")
    await asyncio.wait_for(retrying.wait(), timeout=5)
    await publish(events, "m-later")
    await eventually(lambda: committed == ["m-later"], description="the later message committed")

    await consumer.stop(timeout_seconds=5)

    # The later one's ack (one frame up to its tag would take the first along) left the
    # first unacked: it is back in the queue, the later one is not.
    returned = await eventually(lambda: take_one(connection, topology.queue), description="the first returned")
    assert returned.message_id == "m-first"
    assert await ready_messages(connection, topology.queue) == 0
    assert await ready_messages(connection, declared.dead_letter_queue.name) == 0


async def test_a_batch_lingers_for_what_arrives_after_its_first_delivery_until_it_is_full(
    connection: AbstractRobustConnection, topology: Topology
) -> None:
    batches = Batches()
    # A linger far longer than three publishes take; the third fills the batch, ending it.
    consumer, _ = await running_consumer(
        connection, topology, batches, batches=True, prefetch_count=3, linger_seconds=30
    )
    events = await publisher(connection, topology.exchange)
    for number in range(3):
        await publish(events, f"m-{number}")

    await eventually(lambda: batches.seen, description="the batch handled", timeout_seconds=20)
    await consumer.stop(timeout_seconds=5)

    assert batches.seen == [["m-0", "m-1", "m-2"]]
