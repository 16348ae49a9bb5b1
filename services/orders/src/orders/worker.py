"""The worker process: consumes NotificationSent and marks orders notified, exactly once."""

from __future__ import annotations

from aiohttp import web

from orders.app import database
from orders.keys import AMQP, WORKER_SETTINGS
from orders.messaging import CONSUMED_EVENT, notification_handler
from orders.settings import WorkerSettings
from shared.db import DATABASE_OUTAGE
from shared.messaging import amqp_connection, queue_consumer
from shared.web import create_base_app


def create_worker_app(settings: WorkerSettings) -> web.Application:
    app = create_base_app(settings)
    app[WORKER_SETTINGS] = settings
    # Order matters: the consumer stops before the pool and the connection it uses close.
    app.cleanup_ctx.append(database(settings))
    app.cleanup_ctx.append(amqp_connection(AMQP, settings.amqp_url.get_secret_value(), connection_name="orders-worker"))
    app.cleanup_ctx.append(
        queue_consumer(
            AMQP,
            settings,
            exchange_name=settings.notifications_exchange,
            routing_keys=[CONSUMED_EVENT.event_type],
            handler_factory=notification_handler,
            transient=DATABASE_OUTAGE,
            stop_timeout_seconds=settings.shutdown_timeout_seconds,
        )
    )
    return app
