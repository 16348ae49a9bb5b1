"""The orders web process: the HTTP API on PostgreSQL."""

from __future__ import annotations

from aiohttp import web

from orders.keys import DB_POOL, WEB_SETTINGS
from orders.routes import routes
from orders.settings import OrdersSettings, WebSettings
from shared.db import database_unavailable_middleware, pool_for
from shared.web import CleanupContext, create_base_app
from shared.web.admission import deadline


def database(settings: OrdersSettings) -> CleanupContext:
    return pool_for(DB_POOL, settings)


def create_app(settings: WebSettings) -> web.Application:
    app = create_base_app(settings, max_body_bytes=settings.max_body_bytes, max_in_flight=settings.max_in_flight)
    app[WEB_SETTINGS] = settings
    # The gateway's deadline bounds every wait of the request (a pooled connection, say).
    app.middlewares.extend([deadline, database_unavailable_middleware])
    app.cleanup_ctx.append(database(settings))
    app.router.add_routes(routes)
    return app
