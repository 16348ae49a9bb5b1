"""The order board at /: its page, its settings, demo sign-in, and the live update stream."""

from __future__ import annotations

import asyncio
import json
import re

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from gateway.app import create_app
from shared.web.streams import read_events

from .support import OrdersStandIn, bearer, settings, valid_token

Client = TestClient[web.Request, web.Application]
# A bound against a hang, not a speed check.
EVENT_TIMEOUT_SECONDS = 30.0


def _client(orders_url: str, **overrides: object) -> TestClient[web.Request, web.Application]:
    return TestClient(TestServer(create_app(settings(orders_url, **overrides))))


async def _place(client: Client, customer: str) -> str:
    answer = await client.post(
        "/api/v1/orders",
        json={"currency": "EUR", "items": [{"sku": "BOOK-1", "quantity": 1, "unit_price_cents": 500}]},
        headers={**bearer(valid_token(customer)), "Idempotency-Key": f"key-{customer}"},
    )
    assert answer.status == 201
    order_id: str = (await answer.json())["id"]
    return order_id


async def test_the_page_loads_only_its_own_assets_under_a_policy_without_inline_script(orders_url: str) -> None:
    async with _client(orders_url) as client:
        page = await client.get("/")
        html = await page.text()
        assets = re.findall(r'(?:src|href)="(/[^"]+)"', html)
        answers = {asset: await client.get(asset) for asset in assets}

    assert page.status == 200
    assert page.content_type == "text/html"
    policy = dict(directive.strip().split(" ", 1) for directive in page.headers["Content-Security-Policy"].split(";"))
    assert policy["default-src"] == "'none'"
    assert policy["script-src"] == "'self'"
    assert policy["connect-src"] == "'self'"
    assert "<script>" not in html
    assert {asset for asset in assets if asset.startswith("/board/static/")} == {
        "/board/static/board.js",
        "/board/static/board.css",
    }
    assert all(answer.status == 200 for answer in answers.values()), {a: r.status for a, r in answers.items()}


async def test_demo_sign_in_is_off_unless_demo_customers_are_named(orders_url: str) -> None:
    async with _client(orders_url) as client:
        config = await (await client.get("/board/config.json")).json()
        sign_in = await client.post("/board/demo-token", json={"customer": "alice"})

    assert config["demo_customers"] == []
    assert config["demo_token_path"] is None
    assert config["trace_url"] is None
    assert sign_in.status == 404


async def test_a_demo_customer_gets_a_working_token_and_nobody_else_does(orders_url: str) -> None:
    async with _client(orders_url, demo_customers="alice,bob") as client:
        config = await (await client.get("/board/config.json")).json()
        granted = await client.post(config["demo_token_path"], json={"customer": "alice"})
        token = (await granted.json())["access_token"]
        used = await client.get("/api/v1/orders", headers=bearer(token))
        refused = await client.post(config["demo_token_path"], json={"customer": "mallory"})

    assert config["demo_customers"] == ["alice", "bob"]
    assert granted.status == 200
    assert used.status == 200
    assert refused.status == 403
    assert refused.content_type == "application/problem+json"


async def test_the_update_stream_carries_only_the_tokens_customers_orders_and_only_public_fields(
    orders: tuple[OrdersStandIn, str],
) -> None:
    async with _client(orders[1]) as client:
        alices = await _place(client, "alice")
        await _place(client, "bob")  # the stand-in streams it to Alice too, as a broken orders would
        async with client.get("/api/v1/order-updates", headers=bearer(valid_token("alice"))) as stream:
            async with asyncio.timeout(EVENT_TIMEOUT_SECONDS):
                events = [event async for event in read_events(stream.content)]
            headers = stream.headers

    # Bob's order ended the stream instead of reaching Alice; the client reconnects and resyncs.
    assert [(kind, json.loads(data)["id"]) for kind, data in events] == [("order", alices)]
    assert "internal_note" not in json.loads(events[0][1])
    assert headers["Content-Type"] == "text/event-stream"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert "X-Request-Id" in headers


async def test_the_update_stream_needs_a_token(orders_url: str) -> None:
    async with _client(orders_url) as client:
        answer = await client.get("/api/v1/order-updates")

    assert answer.status == 401


async def test_past_its_stream_bound_the_gateway_refuses_at_once_and_still_answers_requests(orders_url: str) -> None:
    async with _client(orders_url, max_update_streams=1) as client:
        token = bearer(valid_token("alice"))
        async with client.get("/api/v1/order-updates", headers=token) as first:
            assert first.status == 200
            refused = await asyncio.wait_for(client.get("/api/v1/order-updates", headers=token), EVENT_TIMEOUT_SECONDS)
            listing = await client.get("/api/v1/orders", headers=token)
            metrics = await (await client.get("/metrics")).text()

    assert refused.status == 503
    assert refused.headers["Retry-After"] == "1"
    assert listing.status == 200
    # A stream is counted as open, never as a request minutes long (it would swamp the p99).
    assert "dozen_http_server_open_streams 1.0" in metrics
    assert 'route="/api/v1/order-updates"' not in metrics


async def test_the_fault_panel_exists_only_where_a_switchboard_is_configured_and_needs_a_token(
    orders_url: str,
) -> None:
    switched: list[tuple[str, str]] = []

    async def switchboard(request: web.Request) -> web.Response:
        switched.append((request.method, request.path))
        return web.json_response({"faults": []})

    stand_in = web.Application()
    stand_in.router.add_route("*", "/faults", switchboard)
    stand_in.router.add_route("*", "/faults/{name}", switchboard)
    async with TestServer(stand_in) as faults_server, _client(orders_url) as without:
        absent = await without.get("/board/faults", headers=bearer(valid_token("alice")))
        async with _client(orders_url, board_faults_url=str(faults_server.make_url(""))) as client:
            config = await (await client.get("/board/config.json")).json()
            anonymous = await client.put("/board/faults/smtp-refusing")
            listed = await client.get(config["faults_path"], headers=bearer(valid_token("alice")))
            switched_on = await client.put(
                f"{config['faults_path']}/smtp-refusing", headers=bearer(valid_token("alice"))
            )

    assert absent.status == 404
    assert anonymous.status == 401
    assert (listed.status, switched_on.status) == (200, 200)
    assert switched == [("GET", "/faults"), ("PUT", "/faults/smtp-refusing")]


PROCESS_METRICS = """\
dozen_http_server_request_duration_seconds_count{method="POST",route="/orders",status="2xx"} 30.0
dozen_http_server_request_duration_seconds_count{method="POST",route="/orders",status="4xx"} 7.0
dozen_order_accepted_to_notified_seconds_bucket{le="0.25"} 20.0
dozen_order_accepted_to_notified_seconds_bucket{le="+Inf"} 28.0
dozen_order_accepted_to_notified_seconds_count 28.0
dozen_outbox_backlog 4.0
dozen_queue_messages{queue="notifier.order-created"} 3.0
dozen_queue_messages{queue="notifier.order-created.dlq"} 1.0
"""


async def test_the_health_strip_reads_every_process_it_can_and_keeps_its_own_figures_apart(orders_url: str) -> None:
    async def metrics(request: web.Request) -> web.Response:
        return web.Response(text=PROCESS_METRICS, content_type="text/plain")

    process = web.Application()
    process.router.add_get("/metrics", metrics)
    async with TestServer(process) as server:
        urls = f"{server.make_url('/metrics')},http://127.0.0.1:1/metrics"
        async with _client(orders_url, board_metrics_urls=urls) as client:
            config = await (await client.get("/board/config.json")).json()
            anonymous = await client.get(config["health_path"])
            health = await (await client.get(config["health_path"], headers=bearer(valid_token("alice")))).json()

    assert anonymous.status == 401
    assert health == {
        "scraped": 1,
        "of": 2,
        "accepted_total": 30.0,
        "notified_total": 28.0,
        "outbox_backlog": 4.0,
        "queues": {"notifier.order-created": 3.0},
        "dead_letters": {"notifier.order-created.dlq": 1.0},
        "notified_buckets": {"0.25": 20.0, "+Inf": 28.0},
    }
