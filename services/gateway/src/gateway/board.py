"""The order board at /: a page to place orders and watch each one move on, live.

The page is static (gateway/board_assets, no CDN, no inline script) and talks only to this
gateway's public API, with a bearer token in a header, never in a URL. What differs per
deploy comes from /board/config.json, built from settings: the demo customers, if any, and
where the trace and email links point. Demo sign-in (POST /board/demo-token) exists only
when GATEWAY_DEMO_CUSTOMERS names customers; the production overlay sets none.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from pydantic import BaseModel, ConfigDict

from gateway.board_health import HEALTH_PATH, health
from gateway.keys import SETTINGS
from gateway.ratelimit import RATE_LIMITS
from gateway.routes import UPDATES_PATH, authenticated_customer, within_limit
from gateway.settings import WebSettings
from gateway.tokens import issue_token
from shared.web import Problem, json_body

ASSETS = Path(__file__).with_name("board_assets")
FAULTS_PATH = "/board/faults"
# Switching a fault off answers once the orders taken meanwhile are through (or its bound passed).
FAULTS_TIMEOUT_SECONDS = 180
DEMO_TOKEN_PATH = "/board/demo-token"  # noqa: S105 - a path, not a secret
# A demo visitor's token: long enough for a demo, short enough to be worthless soon after.
DEMO_TOKEN_SECONDS = 3600
# Its own scripts, styles and API calls; nothing inline, nothing from elsewhere (the empty
# icon is a data: URL, so the browser asks for no /favicon.ico).
POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


class DemoSignIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    customer: str


def add_board(app: web.Application, settings: WebSettings) -> None:
    page = (ASSETS / "index.html").read_text()

    async def board(request: web.Request) -> web.Response:
        return web.Response(text=page, content_type="text/html", headers={"Content-Security-Policy": POLICY})

    app.router.add_get("/", board)
    app.router.add_get("/board/config.json", config)
    app.router.add_static("/board/static", ASSETS)
    if settings.demo_customer_ids:
        app.router.add_post(DEMO_TOKEN_PATH, demo_token)
    if settings.board_metrics_url_list:
        app.router.add_get(HEALTH_PATH, health)
    if settings.board_faults_url is not None:
        faults = _faults(settings.board_faults_url.get_secret_value())
        app.router.add_get(FAULTS_PATH, faults)
        app.router.add_route("PUT", f"{FAULTS_PATH}/{{name}}", faults)
        app.router.add_route("DELETE", f"{FAULTS_PATH}/{{name}}", faults)


async def config(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    body: dict[str, Any] = {
        "demo_customers": list(settings.demo_customer_ids),
        "demo_token_path": DEMO_TOKEN_PATH if settings.demo_customer_ids else None,
        "updates_path": UPDATES_PATH,
        "trace_url": settings.board_trace_link or None,
        "mail_url": settings.board_mail_link or None,
        "faults_path": FAULTS_PATH if settings.board_faults_url is not None else None,
        "health_path": HEALTH_PATH if settings.board_metrics_url_list else None,
    }
    return web.json_response(body)


async def demo_token(request: web.Request) -> web.Response:
    """A short-lived token for one of the demo customers, to whoever asks (development only)."""
    await within_limit(request.app[RATE_LIMITS].per_address, request.remote or "unknown")
    sign_in = await json_body(request, DemoSignIn)
    settings = request.app[SETTINGS]
    if sign_in.customer not in settings.demo_customer_ids:
        raise Problem(403, "Forbidden", "Not one of the demo customers.")
    token = issue_token(
        settings, sign_in.customer, ttl_seconds=min(DEMO_TOKEN_SECONDS, settings.jwt_max_lifetime_seconds)
    )
    return web.json_response(
        {"access_token": token, "token_type": "Bearer", "expires_in": DEMO_TOKEN_SECONDS, "customer": sign_in.customer}
    )


def _faults(switchboard: str) -> Callable[[web.Request], Awaitable[web.Response]]:
    """The fault switchboard's answers, passed on (development only: GATEWAY_BOARD_FAULTS_URL).

    Only a signed-in visitor may switch: a valid token of any customer. A session per call:
    a few calls a minute, from a developer's board.
    """

    async def faults(request: web.Request) -> web.Response:
        await authenticated_customer(request)
        name = request.match_info.get("name", "")
        url = switchboard.rstrip("/") + "/faults" + (f"/{name}" if name else "")
        timeout = aiohttp.ClientTimeout(total=FAULTS_TIMEOUT_SECONDS)
        try:
            async with (
                aiohttp.ClientSession(timeout=timeout) as session,
                session.request(request.method, url) as answer,
            ):
                return web.Response(body=await answer.read(), status=answer.status, content_type="application/json")
        except (aiohttp.ClientError, TimeoutError):
            raise Problem(
                503, "Service Unavailable", "The fault switchboard does not answer; is `make dev` running?"
            ) from None

    return faults
