"""The gateway web process: the only public entry point."""

from __future__ import annotations

from aiohttp import web

from gateway.board import add_board
from gateway.docs import add_api_docs
from gateway.edge import cors_middleware, header_limit_middleware, security_headers_middleware
from gateway.edge_tracing import link_callers_span
from gateway.keys import SETTINGS, STREAM_SLOTS, TOKENS
from gateway.ratelimit import rate_limiter
from gateway.routes import OPENAPI_PATH, UPDATES_PATH, request_id_middleware, routes
from gateway.settings import WebSettings
from gateway.tokens import TokenVerifier
from gateway.upstream import orders_client
from shared.web import AdaptiveLimit, create_base_app
from shared.web.streams import StreamSlots


def create_app(settings: WebSettings) -> web.Application:
    # The edge's bound follows latency: past capacity it admits less, so refusals stay fast.
    in_flight = AdaptiveLimit(settings.max_in_flight, target_seconds=settings.target_latency_seconds)
    app = create_base_app(
        settings, max_body_bytes=settings.max_body_bytes, in_flight=in_flight, streaming_paths=[UPDATES_PATH]
    )
    app[SETTINGS] = settings
    app[STREAM_SLOTS] = StreamSlots(settings.max_update_streams)
    app[TOKENS] = TokenVerifier(settings)
    # Outermost, so that problem documents carry the request id too.
    app.middlewares.insert(0, request_id_middleware)
    # Outside the problem middleware: every answer, problems included, gets the headers.
    app.middlewares.insert(1, security_headers_middleware)
    # Inside it: what these refuse becomes a problem document like any other refusal.
    app.middlewares.extend([header_limit_middleware, cors_middleware, link_callers_span])
    # Readiness deliberately does not check orders: an orders outage must not take every
    # gateway out of rotation; it answers 503 per request instead.
    app.cleanup_ctx.append(orders_client(settings))
    # Readiness does not check Redis either: the limiter fails open (gateway.ratelimit).
    app.cleanup_ctx.append(rate_limiter(settings))
    app.router.add_routes(routes)
    add_api_docs(app, openapi_path=OPENAPI_PATH)
    add_board(app, settings)
    return app
