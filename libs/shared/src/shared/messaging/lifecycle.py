"""AMQP resources as aiohttp cleanup contexts, so one lifecycle stops every process type."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager

from aio_pika.abc import AbstractRobustConnection
from aiohttp import web

from shared.messaging.connection import connect
from shared.messaging.consumer import Consumer
from shared.messaging.delivery import BatchHandler
from shared.messaging.metrics import QUEUE_MESSAGES
from shared.messaging.retry import RetryPolicy
from shared.messaging.topology import dead_letter_names, declare_consumer_queue
from shared.queue_settings import ConsumerSettings
from shared.web.app import READINESS, CleanupContext
from shared.web.supervision import supervise

log = logging.getLogger(__name__)

# How often a consumer reports its queue's depth; well inside a 15 s scrape interval.
DEPTH_SAMPLE_SECONDS = 5.0
SAMPLER_STOP_SECONDS = 2.0


async def _sample_depths(connection: AbstractRobustConnection, queue_names: list[str], stop: asyncio.Event) -> None:
    """Report how many messages wait in the consumer's queue and its dead-letter queue.

    Stopped by ``stop``, never cancelled: cancelling aiormq mid channel-open leaves the
    broker expecting that open, and the next frame on the connection closes it — the
    consumer's own graceful stop included.
    """
    while not stop.is_set():
        try:
            channel = await connection.channel()
            try:
                for name in queue_names:
                    queue = await channel.declare_queue(name, passive=True)
                    QUEUE_MESSAGES.labels(name).set(queue.declaration_result.message_count or 0)
            finally:
                await channel.close()
        except Exception as exc:  # noqa: BLE001 - a sample missed only leaves a gauge as it was
            # The broker gone or reconnecting shows here in many guises (aio-pika raises a bare
            # RuntimeError for a connection not open yet); the consumer reports the outage.
            log.debug("queue depth not sampled", extra={"error": type(exc).__name__})
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), DEPTH_SAMPLE_SECONDS)


def amqp_connection(
    key: web.AppKey[AbstractRobustConnection], url: str, *, connection_name: str, readiness_check: str = "rabbitmq"
) -> CleanupContext:
    """A robust connection at ``key`` for the app's life, its state a readiness check.

    A process that both consumes and publishes opens one of each: under a memory or disk
    alarm RabbitMQ blocks every connection that publishes, and a consumer sharing it would
    stop acknowledging too.
    """

    @asynccontextmanager
    async def connection_context(app: web.Application) -> AsyncIterator[None]:
        connection = await connect(url, connection_name=connection_name)
        app[key] = connection

        async def connected() -> None:
            # Robust connections reconnect in the background; until then, not ready.
            if connection.is_closed or not connection.connected.is_set():
                raise ConnectionError("AMQP connection is down")

        app[READINESS].add_check(readiness_check, connected)
        try:
            yield
        finally:
            await connection.close()

    return connection_context


def queue_consumer(
    connection_key: web.AppKey[AbstractRobustConnection],
    settings: ConsumerSettings,
    *,
    exchange_name: str,
    routing_keys: Iterable[str],
    handler_factory: Callable[[web.Application], BatchHandler],
    transient: tuple[type[BaseException], ...],
    stop_timeout_seconds: float,
) -> CleanupContext:
    """Consume the settings' queue, bound to ``exchange_name``, for as long as the app runs: in
    batches of up to its prefetch count gathered for at most its linger, retrying failures as it
    says (``transient`` ones without counting them); stop gracefully when the app shuts down.

    The one wiring of every consumer process. Must come after the connection (and whatever
    the handler uses) in ``cleanup_ctx``, so that it stops before they close.
    """
    queue_name, prefetch_count = settings.queue, settings.prefetch_count
    retry = RetryPolicy(
        max_attempts=settings.max_attempts,
        first_backoff_seconds=settings.first_backoff_seconds,
        max_backoff_seconds=settings.max_backoff_seconds,
        transient=transient,
    )
    routing_keys = tuple(routing_keys)

    @asynccontextmanager
    async def consumer_context(app: web.Application) -> AsyncIterator[None]:
        channel = await app[connection_key].channel(publisher_confirms=True)
        await channel.set_qos(prefetch_count=prefetch_count)
        topology = await declare_consumer_queue(
            channel, queue_name=queue_name, exchange_name=exchange_name, routing_keys=routing_keys
        )
        consumer = Consumer(
            channel=channel,
            queue=topology.queue,
            dead_letter_exchange=topology.dead_letter_exchange,
            handler=handler_factory(app),
            retry=retry,
            max_batch=prefetch_count,
            linger_seconds=settings.batch_linger_seconds,
        )
        supervise(app, await consumer.start())
        log.info("consuming", extra={"queue": queue_name, "prefetch_count": prefetch_count})
        stop_sampling = asyncio.Event()
        sampler = supervise(
            app,
            asyncio.create_task(
                _sample_depths(app[connection_key], [queue_name, *dead_letter_names(queue_name)[1:]], stop_sampling),
                name=f"sample {queue_name}",
            ),
        )
        try:
            yield
        finally:
            stop_sampling.set()
            # A sample in progress gets to finish; one stuck on a dead broker does not hold the exit.
            _, stuck = await asyncio.wait({sampler}, timeout=SAMPLER_STOP_SECONDS)
            for task in stuck:
                task.cancel()
            await asyncio.gather(sampler, return_exceptions=True)
            await consumer.stop(stop_timeout_seconds)
            log.info("stopped consuming", extra={"queue": queue_name})

    return consumer_context
