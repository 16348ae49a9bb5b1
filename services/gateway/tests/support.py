"""An HTTP stand-in for the orders API, a token kit, and the OpenAPI conformance check."""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime
from typing import Any

import jwt
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from aiohttp.typedefs import Handler
from jsonschema import Draft202012Validator

from gateway.openapi import document
from gateway.settings import WebSettings
from gateway.tokens import issue_token
from shared.events.updates import ORDER_UPDATED
from shared.testing.backing_services import REDIS_URL_VARIABLE
from shared.web.streams import Event, send_events

# 64 bytes: long enough for every HMAC algorithm, so tokens can differ by algorithm alone.
SECRET = "test-secret-long-enough-for-hs512-which-wants-sixty-four-bytes!!"  # pragma: allowlist secret


# What the orders stand-in asks of its callers, as orders web does (ORDERS_API_TOKEN).
ORDERS_TOKEN = "test-orders-token-at-least-thirty-two-bytes"  # pragma: allowlist secret


def redis_url() -> str:
    """The real Redis the rate limiter uses in these tests."""
    url = os.environ.get(REDIS_URL_VARIABLE)
    if not url:
        pytest.fail(f"set {REDIS_URL_VARIABLE}, e.g. redis://127.0.0.1:6379/0: the gateway's rate limiter needs Redis")
    return url


def settings(orders_url: str, **overrides: Any) -> WebSettings:
    values: dict[str, Any] = {
        "jwt_secret": SECRET,
        "port": 1,
        "management_port": 2,
        "orders_url": orders_url,
        "orders_token": ORDERS_TOKEN,
        "redis_url": redis_url(),
        # Out of the way of every test but the limiter's own (test_rate_limit.py).
        "rate_limit_per_second": 10_000,
        "rate_limit_burst": 10_000,
        "anonymous_rate_limit_per_second": 10_000,
        "anonymous_rate_limit_burst": 10_000,
        "upstream_timeout_seconds": 0.5,
        "upstream_connect_timeout_seconds": 0.5,
    }
    return WebSettings(**(values | overrides))


def valid_token(subject: str) -> str:
    return issue_token(settings("http://unused"), subject, ttl_seconds=60)


def crafted_token(
    subject: str,
    *,
    secret: str = SECRET,
    algorithm: str = "HS256",
    header: dict[str, Any] | None = None,
    **claims: Any,
) -> str:
    """A token with chosen claims (None drops one), key, algorithm and header."""
    now = int(time.time())
    payload = {"iss": "dozen", "aud": "dozen-api", "sub": subject, "iat": now, "exp": now + 60} | claims
    payload = {name: value for name, value in payload.items() if value is not None}
    return jwt.encode(payload, secret, algorithm=algorithm, headers={"typ": "at+jwt"} | (header or {}))


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class OrdersStandIn:
    """Answers like the orders API; can be told to fail, and records what it was sent."""

    def __init__(self) -> None:
        self.orders: dict[str, dict[str, Any]] = {}
        self.keys: dict[tuple[str, str], str] = {}
        self.seen: list[web.Request] = []
        self.failure: str | None = None

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self.gateway_only])
        app.router.add_post("/orders", self.create)
        app.router.add_get("/orders/{order_id}", self.read)
        app.router.add_get("/orders", self.listing)
        app.router.add_get("/order-updates", self.updates)
        return app

    @web.middleware
    async def gateway_only(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.headers.get("Authorization") != f"Bearer {ORDERS_TOKEN}":
            return web.json_response({"title": "Unauthorized", "status": 401}, status=401)
        return await handler(request)

    async def _fail(self) -> web.Response | None:
        if self.failure == "crash":
            return web.Response(status=500, text="Traceback: psycopg at db-internal.svc.cluster.local:5432")
        if self.failure == "unavailable":
            return web.json_response({"title": "Service Unavailable", "status": 503}, status=503)
        if self.failure == "slow":
            await asyncio.sleep(30)  # far past the gateway's timeout: it must give up, not wait
        if self.failure == "garbage":
            return web.Response(status=200, text="<html>oops</html>")
        if self.failure == "wrong-shape":
            return web.json_response(["not", "an", "order"], status=201)
        return None

    async def create(self, request: web.Request) -> web.Response:
        self.seen.append(request)
        if failed := await self._fail():
            return failed
        body = await request.json()
        key = (body["customer_id"], request.headers["Idempotency-Key"])
        if key in self.keys:
            return web.json_response(self.orders[self.keys[key]], status=201, headers={"Idempotent-Replayed": "true"})
        order = {
            "id": str(uuid.uuid4()),
            "customer_id": body["customer_id"],
            "currency": body["currency"],
            "items": body["items"],
            "total_cents": sum(line["quantity"] * line["unit_price_cents"] for line in body["items"]),
            "status": "accepted",
            "created_at": datetime.now(UTC).isoformat(),
            "published_at": None,
            "notified_at": None,
            "internal_note": "must not reach the public",
        }
        self.orders[order["id"]] = order
        self.keys[key] = order["id"]
        if self.failure == "drop-after-commit":
            # The order is kept, the answer lost: the connection dies under the request, once.
            self.failure = None
            assert request.transport is not None
            request.transport.abort()
        return web.json_response(order, status=201, headers={"Location": f"/orders/{order['id']}"})

    async def read(self, request: web.Request) -> web.Response:
        self.seen.append(request)
        if failed := await self._fail():
            return failed
        order = self.orders.get(request.match_info["order_id"])
        if order is None:
            return web.json_response({"type": "about:blank", "title": "Not Found", "status": 404}, status=404)
        return web.json_response(order)

    async def listing(self, request: web.Request) -> web.Response:
        self.seen.append(request)
        if failed := await self._fail():
            return failed
        if request.query.get("limit") == "0":
            problem = {"title": "Unprocessable Content", "status": 422, "errors": [{"field": "limit", "message": "x"}]}
            return web.json_response(problem, status=422)
        customer = request.query["customer_id"]
        items = [order for order in self.orders.values() if order["customer_id"] == customer]
        return web.json_response({"items": items, "next_cursor": None})

    async def updates(self, request: web.Request) -> web.StreamResponse:
        """Every order it holds, of every customer, as updates: the gateway must narrow them."""
        self.seen.append(request)
        if failed := await self._fail():
            return failed

        async def events() -> AsyncIterator[Event]:
            for order in list(self.orders.values()):
                yield ORDER_UPDATED, json.dumps(order)
            await asyncio.Event().wait()  # then quiet, as a stream with nothing new is

        return await send_events(request, events(), max_seconds=60)


def conforms(path: str, method: str, status: int, body: object) -> None:
    """The answer is one the OpenAPI document promises, body and all."""
    responses = document()["paths"][path][method]["responses"]
    assert str(status) in responses, f"{method.upper()} {path} answered {status}, which is not documented"
    content = responses[str(status)].get("content", {})
    [(_, media)] = content.items()
    schema = {**media["schema"], "components": document()["components"]}
    Draft202012Validator(schema).validate(body)


async def call(
    client: TestClient[web.Request, web.Application], method: str, url: str, path: str, **kwargs: Any
) -> tuple[int, Mapping[str, str], Any]:
    response = await client.request(method, url, **kwargs)
    body = await response.json(content_type=None)
    conforms(path, method.lower(), response.status, body)
    return response.status, response.headers, body
