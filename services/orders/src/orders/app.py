"""The orders web process: the HTTP API on PostgreSQL."""

from __future__ import annotations

from aiohttp import web

from orders.keys import DB_POOL, WEB_SETTINGS
from orders.routes import routes
from orders.settings import OrdersSettings, WebSettings
from shared.db import database_unavailable_middleware, pool_for
from shared.web import CleanupContext, create_base_app


def database(settings: OrdersSettings) -> CleanupContext:
    return pool_for(DB_POOL, settings)


def create_app(settings: WebSettings) -> web.Application:
    app = create_base_app(settings, max_body_bytes=settings.max_body_bytes)
    app[WEB_SETTINGS] = settings
    app.middlewares.append(database_unavailable_middleware)
    app.cleanup_ctx.append(database(settings))
    app.router.add_routes(routes)
    return app
