"""AMQP connection and consumer as cleanup contexts: one app lifecycle for the worker process."""

from __future__ import annotations

import aio_pika
from aio_pika.abc import AbstractIncomingMessage, AbstractRobustConnection
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from shared.config import ServiceSettings
from shared.messaging import BatchHandler, amqp_connection, each, queue_consumer
from shared.queue_settings import ConsumerSettings
from shared.testing import eventually
from shared.testing.amqp import AmqpNames
from shared.web import create_base_app

from .messaging_support import FAST_RETRIES, ROUTING_KEY, Topology, publisher, ready_messages

AMQP = web.AppKey("amqp", AbstractRobustConnection)


class WorkerSettings(ServiceSettings, env_prefix="WORKERTEST_"):
    service_name = "workertest"


async def test_worker_app_consumes_reports_readiness_and_stops_with_the_app(
    amqp_url: str, amqp_names: AmqpNames
) -> None:
    topology = Topology(amqp_names)
    received: list[bytes] = []

    def handler_factory(app: web.Application) -> BatchHandler:
        async def handle(message: AbstractIncomingMessage) -> None:
            received.append(message.body)

        return each(handle)

    app = create_base_app(WorkerSettings())
    app.cleanup_ctx.append(amqp_connection(AMQP, amqp_url, connection_name="workertest"))
    app.cleanup_ctx.append(
        queue_consumer(
            AMQP,
            ConsumerSettings(
                amqp_url=amqp_url,
                queue=topology.queue,
                prefetch_count=5,
                batch_linger_seconds=0.01,
                max_attempts=FAST_RETRIES.max_attempts,
                first_backoff_seconds=FAST_RETRIES.first_backoff_seconds,
                max_backoff_seconds=FAST_RETRIES.max_backoff_seconds,
            ),
            exchange_name=topology.exchange,
            routing_keys=[ROUTING_KEY],
            handler_factory=handler_factory,
            transient=(),
            stop_timeout_seconds=5,
        )
    )

    async with TestClient(TestServer(app)) as client:
        response = await client.get("/readyz")
        assert response.status == 200
        assert (await response.json())["checks"] == {"rabbitmq": "ok"}
        connection = app[AMQP]
        events = await publisher(connection, topology.exchange)
        await events.publish(ROUTING_KEY, b'{"n": 1}', message_id="m-1")
        await eventually(lambda: received, description="worker consumed")

    assert received == [b'{"n": 1}']
    assert connection.is_closed
    checker = await aio_pika.connect_robust(amqp_url)
    try:
        assert await ready_messages(checker, topology.queue) == 0
    finally:
        await checker.close()
