"""The public edge: security headers on every answer, 431 for oversized headers, CORS closed by default."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from pydantic import ValidationError

from gateway.app import create_app
from gateway.edge import SECURITY_HEADERS
from shared.testing import eventually
from shared.web import PROBLEM_CONTENT_TYPE

from .support import OrdersStandIn, bearer, settings, valid_token

ORDERS = "/api/v1/orders"
SHOP = "https://shop.dozen.test"
Client = TestClient[web.Request, web.Application]


async def gateway(orders_url: str, **overrides: Any) -> Client:
    client = TestClient(TestServer(create_app(settings(orders_url, **overrides))))
    await client.start_server()
    return client


@pytest.mark.parametrize(
    ("method", "path", "expected"),
    [("GET", ORDERS, 200), ("GET", ORDERS + "?limit=0", 422), ("GET", "/nowhere", 404), ("DELETE", ORDERS, 405)],
)
async def test_every_answer_carries_the_security_headers(
    orders_url: str, method: str, path: str, expected: int
) -> None:
    client = await gateway(orders_url)
    try:
        response = await client.request(method, path, headers=bearer(valid_token("alice")))
        assert response.status == expected
        for name, value in SECURITY_HEADERS.items():
            assert response.headers.get(name) == value, name
    finally:
        await client.close()


async def test_headers_past_the_limit_are_431_as_a_problem(orders_url: str) -> None:
    client = await gateway(orders_url, max_header_bytes=2048)
    try:
        padding = {f"X-Pad-{index}": "x" * 200 for index in range(12)}
        response = await client.get(ORDERS, headers=bearer(valid_token("alice")) | padding)
        assert response.status == 431
        assert response.content_type == "application/problem+json"
        assert (await response.json())["status"] == 431
        fitting = await client.get(ORDERS, headers=bearer(valid_token("alice")))
        assert fitting.status == 200
    finally:
        await client.close()


async def test_cors_is_closed_by_default(orders_url: str) -> None:
    client = await gateway(orders_url)
    try:
        simple = await client.get(ORDERS, headers=bearer(valid_token("alice")) | {"Origin": SHOP})
        assert simple.status == 200
        assert "Access-Control-Allow-Origin" not in simple.headers
        preflight = await client.options(ORDERS, headers={"Origin": SHOP, "Access-Control-Request-Method": "POST"})
        assert preflight.status == 403
        assert "Access-Control-Allow-Origin" not in preflight.headers
    finally:
        await client.close()


async def test_configured_origins_get_preflight_and_response_headers_others_do_not(orders_url: str) -> None:
    client = await gateway(orders_url, cors_allowed_origins=f"{SHOP},http://localhost:5173")
    try:
        preflight = await client.options(
            ORDERS,
            headers={
                "Origin": SHOP,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization",
            },
        )
        assert preflight.status == 204
        assert preflight.headers["Access-Control-Allow-Origin"] == SHOP
        assert "POST" in preflight.headers["Access-Control-Allow-Methods"]
        assert "Idempotency-Key" in preflight.headers["Access-Control-Allow-Headers"]
        answer = await client.get(ORDERS, headers=bearer(valid_token("alice")) | {"Origin": SHOP})
        assert answer.headers["Access-Control-Allow-Origin"] == SHOP
        assert "Origin" in answer.headers.getall("Vary")
        stranger = await client.get(ORDERS, headers=bearer(valid_token("alice")) | {"Origin": "https://evil.test"})
        assert "Access-Control-Allow-Origin" not in stranger.headers
    finally:
        await client.close()


@pytest.mark.parametrize("origins", ["*", "shop.dozen.test", "https://shop.dozen.test/", "https://a.test,,"])
def test_origins_must_be_exact_scheme_host_port_lists(origins: str) -> None:
    with pytest.raises(ValidationError):
        settings("http://unused", cors_allowed_origins=origins)


async def test_past_its_in_flight_bound_the_gateway_refuses_at_the_door_as_a_problem_with_retry_after(
    orders: tuple[OrdersStandIn, str],
) -> None:
    stand_in, stand_in_url = orders
    stand_in.failure = "slow"  # the one request it may work on stays in flight
    client = await gateway(stand_in_url, max_in_flight=1, upstream_timeout_seconds=30)
    try:
        held = asyncio.create_task(client.get(ORDERS, headers=bearer(valid_token("alice"))))
        await eventually(lambda: stand_in.seen, description="one request in flight")

        refused = await client.get(ORDERS, headers=bearer(valid_token("bob")) | {"X-Request-Id": "refused-1"})

        assert refused.status == 503
        assert refused.headers["Retry-After"] == "1"
        assert refused.content_type == PROBLEM_CONTENT_TYPE
        assert (await refused.json())["status"] == 503
        assert refused.headers["X-Request-Id"] == "refused-1"
        for name, value in SECURITY_HEADERS.items():
            assert refused.headers.get(name) == value, name
        assert (await client.get("/readyz")).status == 200
        held.cancel()
    finally:
        await client.close()
