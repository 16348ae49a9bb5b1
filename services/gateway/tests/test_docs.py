"""/api/docs: Swagger UI for the gateway's own OpenAPI document, served whole by the gateway."""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from gateway.app import create_app
from gateway.openapi import document

from .support import OrdersStandIn, settings

Client = TestClient[web.Request, web.Application]


@pytest.fixture
async def client(orders: tuple[OrdersStandIn, str]) -> AsyncIterator[Client]:
    async with TestClient(TestServer(create_app(settings(orders[1])))) as test_client:
        yield test_client


async def test_the_docs_page_loads_only_from_the_gateway_and_its_policy_allows_exactly_its_script(
    client: Client,
) -> None:
    page = await client.get("/api/docs")
    assert page.status == 200
    assert page.content_type == "text/html"
    html = await page.text()

    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert assets, html
    assert all(asset.startswith("/api/docs/static/") for asset in assets), assets
    for asset in assets:
        answer = await client.get(asset)
        assert answer.status == 200, asset
        assert answer.headers["X-Content-Type-Options"] == "nosniff"
        assert answer.content_type in {"text/css", "text/javascript", "application/javascript", "image/png"}, asset

    policy = dict(directive.strip().split(" ", 1) for directive in page.headers["Content-Security-Policy"].split(";"))
    assert policy["default-src"] == "'none'"
    assert policy["frame-ancestors"] == "'none'"
    assert "'unsafe-inline'" not in policy["script-src"]
    (inline,) = re.findall(r"<script>(.*?)</script>", html, re.DOTALL)
    digest = base64.b64encode(hashlib.sha256(inline.encode()).digest()).decode()
    assert f"'sha256-{digest}'" in policy["script-src"].split()
    # The script loads the gateway's own document.
    assert 'url: "/api/openapi.json"' in inline
    assert (await (await client.get("/api/openapi.json")).json()) == document()


async def test_the_static_route_serves_no_listing_and_nothing_outside_it(client: Client) -> None:
    assert (await client.get("/api/docs/static/")).status in {403, 404}
    assert (await client.get("/api/docs/static/..%2f..%2fcore.py")).status in {403, 404}
