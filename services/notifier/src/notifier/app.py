"""The notifier worker process: an aiohttp app on a management port around one consumer."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp import web

from notifier.keys import AMQP, AMQP_PUBLISHING, DB_POOL, EVENTS, MAILER, SETTINGS
from notifier.mail import Mailer
from notifier.messaging import CONSUMED_EVENT, TRANSIENT_FAILURES, order_created_handler
from notifier.settings import WorkerSettings
from shared.db import pool_for
from shared.messaging import (
    Publisher,
    amqp_connection,
    declare_event_exchange,
    open_confirming_channel,
    queue_consumer,
)
from shared.web import create_base_app


@asynccontextmanager
async def events_publisher(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    channel = await open_confirming_channel(app[AMQP_PUBLISHING])
    exchange = await declare_event_exchange(channel, settings.events_exchange)
    app[EVENTS] = Publisher(exchange, confirm_timeout_seconds=settings.publish_confirm_timeout_seconds)
    try:
        yield
    finally:
        await channel.close()


@asynccontextmanager
async def smtp_mailer(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    app[MAILER] = mailer = Mailer(
        settings.smtp_url.get_secret_value(),
        timeout_seconds=settings.smtp_timeout_seconds,
        connections=settings.smtp_connections,
    )
    try:
        yield
    finally:
        await mailer.close()


def create_worker_app(settings: WorkerSettings) -> web.Application:
    app = create_base_app(settings)
    app[SETTINGS] = settings
    # In this order, so that at shutdown the consumer stops first and the pool last.
    app.cleanup_ctx.append(pool_for(DB_POOL, settings))
    amqp_url = settings.amqp_url.get_secret_value()
    app.cleanup_ctx.append(amqp_connection(AMQP, amqp_url, connection_name="notifier"))
    app.cleanup_ctx.append(
        amqp_connection(
            AMQP_PUBLISHING, amqp_url, connection_name="notifier-publishing", readiness_check="rabbitmq publishing"
        )
    )
    app.cleanup_ctx.append(events_publisher)
    app.cleanup_ctx.append(smtp_mailer)
    app.cleanup_ctx.append(
        queue_consumer(
            AMQP,
            settings,
            exchange_name=settings.orders_exchange,
            routing_keys=[CONSUMED_EVENT.event_type],
            handler_factory=order_created_handler,
            transient=TRANSIENT_FAILURES,
            stop_timeout_seconds=settings.shutdown_timeout_seconds,
        )
    )
    return app
