"""The orders web process: the HTTP API on PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from aiohttp import web

from orders.callers import gateway_only
from orders.keys import DB_POOL, PLACER, STREAM_SLOTS, UPDATES, WEB_SETTINGS
from orders.repository import Placed, Placement, place_orders
from orders.routes import EVENT_SOURCE, UPDATES_PATH, routes
from orders.settings import DatabaseSettings, WebSettings
from orders.updates import CHANNEL, OrderUpdates
from shared.batching import Coalescer
from shared.db import database_unavailable_middleware, pool_for
from shared.db.listen import keep_listening
from shared.web import CleanupContext, FixedLimit, create_base_app
from shared.web.admission import deadline
from shared.web.streams import StreamSlots
from shared.web.supervision import supervise


def database(settings: DatabaseSettings) -> CleanupContext:
    return pool_for(DB_POOL, settings)


@asynccontextmanager
async def order_placer(app: web.Application) -> AsyncIterator[None]:
    pool = app[DB_POOL]

    async def place(placements: Sequence[Placement]) -> list[Placed | Exception]:
        return await place_orders(pool, placements, event_source=EVENT_SOURCE)

    # A batch is never larger than the requests admitted at once.
    app[PLACER] = Coalescer(place, max_batch=app[WEB_SETTINGS].max_in_flight)
    yield


@asynccontextmanager
async def live_updates(app: web.Application) -> AsyncIterator[None]:
    settings = app[WEB_SETTINGS]
    updates = app[UPDATES] = OrderUpdates(app[DB_POOL])
    stop = asyncio.Event()
    listener = supervise(
        app,
        asyncio.create_task(
            keep_listening(
                settings.database_url.get_secret_value(),
                CHANNEL,
                on_notify=updates.notified,
                on_listening=updates.listening,
                stop=stop,
                retry_seconds=settings.update_listen_retry_seconds,
            ),
            name="order-updates-listener",
        ),
    )
    try:
        yield
    finally:
        # Nothing to finish: an update not yet streamed is read again by the client's resync.
        stop.set()
        listener.cancel()
        await asyncio.gather(listener, return_exceptions=True)
        await updates.close()


def create_app(settings: WebSettings) -> web.Application:
    app = create_base_app(
        settings,
        max_body_bytes=settings.max_body_bytes,
        in_flight=FixedLimit(settings.max_in_flight),
        streaming_paths=[UPDATES_PATH],
    )
    app[STREAM_SLOTS] = StreamSlots(settings.max_update_streams)
    app[WEB_SETTINGS] = settings
    # The gateway's deadline bounds every wait of the request (a pooled connection, say).
    app.middlewares.extend([gateway_only(settings.api_token), deadline, database_unavailable_middleware])
    app.cleanup_ctx.append(database(settings))
    app.cleanup_ctx.append(order_placer)
    app.cleanup_ctx.append(live_updates)
    app.router.add_routes(routes)
    return app
