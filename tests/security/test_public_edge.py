"""The attack list, against the real gateway in front of every other Dozen process.

Each attempt has the answer it must get. The stack is started once for the module: the
attacks do not change what the others see (each comes from a client address of its own).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
import yarl

from harness.api import ORDER_BODY, ORDERS_PATH
from harness.stack import LAUNCH, Servers, Stack, from_source, running_stack
from shared.testing import fetchval
from shared.testing.slow_client import GIVE_UP_SECONDS, trickle_until_closed
from shared.testing.smtp import SmtpSink

from .support import bearer, claims, client_of_its_own_address, token

pytestmark = pytest.mark.asyncio(loop_scope="module")
PROBLEM = "application/problem+json"
# Short, so that the slow clients below are cut off well within their patience.
SLOW_CLIENT_BOUNDS = {"GATEWAY_HTTP_IDLE_TIMEOUT_SECONDS": "2", "GATEWAY_HTTP_BODY_TIMEOUT_SECONDS": "2"}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def stack(
    request: pytest.FixtureRequest, postgres_server_url: str, amqp_url: str, redis_url: str
) -> AsyncIterator[Stack]:
    sink = SmtpSink()
    sink.start()
    try:
        async with running_stack(
            Servers(postgres_server_url, amqp_url, redis_url),
            label="security",
            smtp=sink,
            extra_env=SLOW_CLIENT_BOUNDS,
            launch=request.config.stash.get(LAUNCH, from_source),
        ) as running:
            yield running
    finally:
        sink.stop()


async def answer(
    http: aiohttp.ClientSession, method: str, url: str | yarl.URL, **options: Any
) -> tuple[int, dict[str, str], Any]:
    async with http.request(method, url, **options) as response:
        text = await response.text()
        body = json.loads(text) if response.content_type in {PROBLEM, "application/json"} else text
        return response.status, dict(response.headers), body


async def place(stack: Stack, http: aiohttp.ClientSession, customer: str, **options: Any) -> tuple[int, Any]:
    valid = await stack.token(customer)
    headers = bearer(valid) | {"Idempotency-Key": uuid.uuid4().hex} | options.pop("headers", {})
    status, _, body = await answer(http, "POST", stack.gateway_url + ORDERS_PATH, headers=headers, **options)
    return status, body


@pytest.mark.parametrize(
    "attempt",
    [
        pytest.param({}, id="no token"),
        pytest.param(bearer(token({"alg": "none"}, claims(), key=None)), id="alg none"),
        pytest.param(bearer(token({"alg": "HS512"}, claims())), id="HS512, not the pinned algorithm"),
        pytest.param(bearer(token({"alg": "RS256"}, claims())), id="RS256"),
        pytest.param(bearer(token({"alg": "HS256", "typ": "JWT"}, claims())), id="typ JWT, not an access token"),
        pytest.param(bearer(token({"alg": "HS256"}, claims(iss="someone-else"))), id="wrong iss"),
        pytest.param(bearer(token({"alg": "HS256"}, claims(aud="another-api"))), id="wrong aud"),
        pytest.param(bearer(token({"alg": "HS256"}, claims(exp=int(time.time()) - 600))), id="expired"),
        pytest.param(bearer(token({"alg": "HS256"}, claims(nbf=int(time.time()) + 600))), id="nbf ahead"),
        pytest.param(bearer(token({"alg": "HS256"}, claims("alice\r\nX-Injected: 1"))), id="sub with CR LF"),
        pytest.param(
            bearer(token({"alg": "HS256"}, claims(), key="the-attackers-own-key-32-bytes-long")), id="own key"
        ),
    ],
)
async def test_a_token_that_must_not_pass_gets_401_as_a_problem(stack: Stack, attempt: dict[str, str]) -> None:
    async with client_of_its_own_address() as http:
        status, headers, body = await answer(http, "GET", stack.gateway_url + ORDERS_PATH, headers=attempt)
    assert status == 401
    assert headers["WWW-Authenticate"].startswith('Bearer realm="dozen"')
    assert body["status"] == 401


async def test_the_key_never_comes_from_the_token_and_nothing_is_fetched(stack: Stack) -> None:
    fetched: list[bytes] = []

    async def jwks_server(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        fetched.append(await reader.read(100))
        writer.close()

    server = await asyncio.start_server(jwks_server, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    pointing_away = {"alg": "HS256", "jku": f"http://127.0.0.1:{port}/jwks", "x5u": f"http://127.0.0.1:{port}/x5"}
    try:
        async with client_of_its_own_address() as http:
            for kid in ("../../../../dev/null", f"http://127.0.0.1:{port}/key"):
                header = pointing_away | {"kid": kid}
                attacker, _, _ = await answer(
                    http,
                    "GET",
                    stack.gateway_url + ORDERS_PATH,
                    headers=bearer(token(header, claims(), key="the-attackers-own-key-32-bytes-long")),
                )
                # Signed with the gateway's own key: the header is ignored, the key pinned.
                ours, _, _ = await answer(
                    http, "GET", stack.gateway_url + ORDERS_PATH, headers=bearer(token(header, claims()))
                )
                assert (attacker, ours) == (401, 200)
    finally:
        server.close()
        await server.wait_closed()
    assert fetched == [], "the gateway fetched what a token header pointed at"


async def test_another_customers_order_is_answered_as_if_it_did_not_exist(stack: Stack) -> None:
    async with client_of_its_own_address() as http:
        status, alices = await place(stack, http, "alice-bola", json=ORDER_BODY)
        assert status == 201
        bob = bearer(await stack.token("bob-bola"))
        read = await answer(http, "GET", f"{stack.gateway_url}{ORDERS_PATH}/{alices['id']}", headers=bob)
        missing = await answer(http, "GET", f"{stack.gateway_url}{ORDERS_PATH}/{uuid.uuid4()}", headers=bob)
        listed = await answer(http, "GET", stack.gateway_url + ORDERS_PATH, headers=bob)
    assert read[0] == missing[0] == 404
    assert read[2] == missing[2]
    assert listed[2]["items"] == []


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({**ORDER_BODY, "customer_id": "bob", "status": "notified", "total_cents": 1}, ["customer_id", "status"]),
        ({**ORDER_BODY, "items": [{"sku": "A", "quantity": 10**9, "unit_price_cents": 1}]}, ["items.0.quantity"]),
        ({**ORDER_BODY, "items": [{"sku": "A", "quantity": 1, "unit_price_cents": -1}]}, ["items.0.unit_price_cents"]),
        (
            {**ORDER_BODY, "items": [{"sku": "A", "quantity": 1, "unit_price_cents": 2**63}]},
            ["items.0.unit_price_cents"],
        ),
    ],
    ids=["mass assignment", "quantity out of range", "negative price", "price past 64 bits"],
)
async def test_fields_nobody_may_set_and_numbers_out_of_range_are_422_naming_them(
    stack: Stack, body: dict[str, Any], fields: list[str]
) -> None:
    async with client_of_its_own_address() as http:
        status, problem = await place(stack, http, f"assigner-{uuid.uuid4().hex[:8]}", json=body)
    assert status == 422
    named = {error["field"] for error in problem["errors"]}
    assert set(fields) <= named, named


async def test_oversized_chunked_and_deeply_nested_bodies_are_refused_and_nothing_is_placed(stack: Stack) -> None:
    customer = f"big-{uuid.uuid4().hex[:8]}"

    async def ten_megabytes() -> AsyncIterator[bytes]:
        for _ in range(160):
            yield b" " * 65_536

    json_type = {"Content-Type": "application/json"}
    async with client_of_its_own_address() as http:
        large = await place(stack, http, customer, data=b" " * (65 * 1024 + 1), headers=json_type)
        try:
            chunked = (await place(stack, http, customer, data=ten_megabytes(), headers=json_type))[0]
        except (aiohttp.ClientOSError, aiohttp.ServerDisconnectedError):
            # The gateway may close while the client is still sending; either way, nothing read.
            chunked = 413
        deep = await place(stack, http, customer, data=b"[" * 10_000 + b"]" * 10_000, headers=json_type)
    assert (large[0], chunked, deep[0]) == (413, 413, 400)
    placed = await fetchval(stack.orders_database_url, "SELECT count(*) FROM orders WHERE customer_id = $1", customer)
    assert placed == 0


async def test_nine_kib_of_headers_is_431(stack: Stack) -> None:
    many = {f"X-Padding-{number}": "p" * 90 for number in range(100)}
    async with client_of_its_own_address() as http:
        status, _, body = await answer(
            http, "GET", stack.gateway_url + ORDERS_PATH, headers=many | bearer(await stack.token("padded"))
        )
    assert status == 431
    assert body["status"] == 431


@pytest.mark.parametrize(
    "path",
    [
        "/metrics",
        "/readyz",
        "/api/v1/orders/..%2f..%2fmetrics",
        "/api/v1/orders/%2e%2e/%2e%2e/metrics",
        "/api/../metrics",
    ],
)
async def test_probes_metrics_and_traversals_to_them_are_404_on_the_public_port(stack: Stack, path: str) -> None:
    async with client_of_its_own_address() as http:
        url = yarl.URL(stack.gateway_url + path, encoded=True)
        status, _, body = await answer(http, "GET", url, headers=bearer(await stack.token("traveller")))
    assert status == 404
    assert "dozen_build_info" not in json.dumps(body)


async def test_a_foreign_origin_gets_no_cors(stack: Stack) -> None:
    foreign = {"Origin": "https://evil.example"}
    async with client_of_its_own_address() as http:
        preflight = await answer(
            http,
            "OPTIONS",
            stack.gateway_url + ORDERS_PATH,
            headers=foreign | {"Access-Control-Request-Method": "POST"},
        )
        simple = await answer(
            http, "GET", stack.gateway_url + ORDERS_PATH, headers=foreign | bearer(await stack.token("cors"))
        )
    assert preflight[0] == 403
    assert simple[0] == 200
    assert "Access-Control-Allow-Origin" not in simple[1]


async def test_a_hundred_parallel_posts_with_one_key_make_one_order(stack: Stack) -> None:
    customer, key = f"racer-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    headers = bearer(await stack.token(customer)) | {"Idempotency-Key": key}
    async with client_of_its_own_address() as http:
        answers = await asyncio.gather(
            *(
                answer(http, "POST", stack.gateway_url + ORDERS_PATH, json=ORDER_BODY, headers=headers)
                for _ in range(100)
            )
        )
    placed = {body["id"] for status, _, body in answers if status == 201}
    refused = [headers for status, headers, _ in answers if status != 201]
    # The customer's rate limit (a burst of 40) refuses some, each with when to come back.
    assert {status for status, _, _ in answers} <= {201, 429, 503}
    assert all("Retry-After" in headers for headers in refused)
    assert len(placed) == 1
    count = await fetchval(stack.orders_database_url, "SELECT count(*) FROM orders WHERE customer_id = $1", customer)
    assert count == 1


async def test_rapid_requests_are_limited_per_customer_whatever_x_forwarded_for_says(stack: Stack) -> None:
    customer = bearer(await stack.token(f"rapid-{uuid.uuid4().hex[:8]}"))
    async with client_of_its_own_address() as http:
        answers = [
            await answer(
                http, "GET", stack.gateway_url + ORDERS_PATH, headers=customer | {"X-Forwarded-For": f"203.0.113.{n}"}
            )
            for n in range(60)
        ]
    statuses = [status for status, _, _ in answers]
    assert statuses[:40] == [200] * 40, statuses
    assert 429 in statuses[40:]
    assert all(int(headers["Retry-After"]) >= 1 for status, headers, _ in answers if status == 429)


async def test_requests_without_a_token_are_limited_per_client_address(stack: Stack) -> None:
    async with client_of_its_own_address() as http:
        statuses = [
            (
                await answer(
                    http, "GET", stack.gateway_url + ORDERS_PATH, headers={"X-Forwarded-For": f"198.51.100.{n}"}
                )
            )[0]
            for n in range(25)
        ]
    assert statuses[:20] == [401] * 20
    assert 429 in statuses[20:]


async def test_a_slowloris_on_the_request_head_is_cut_off(stack: Stack) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", stack.ports["gateway"])
    writer.write(f"GET {ORDERS_PATH} HTTP/1.1\r\nHost: gateway\r\n".encode())
    try:
        assert await trickle_until_closed(reader, writer) == b""
    finally:
        writer.close()


async def test_a_slow_body_is_408_and_the_connection_closed(stack: Stack) -> None:
    valid = await stack.token("slow-body")
    reader, writer = await asyncio.open_connection("127.0.0.1", stack.ports["gateway"])
    head = (
        f"POST {ORDERS_PATH} HTTP/1.1\r\nHost: gateway\r\nAuthorization: Bearer {valid}\r\n"
        f"Idempotency-Key: slow\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{"
    )
    writer.write(head.encode())
    try:
        reply = await asyncio.wait_for(reader.read(), GIVE_UP_SECONDS)
    finally:
        writer.close()
    assert reply.startswith(b"HTTP/1.1 408 "), reply[:200]


async def test_orders_web_refuses_anyone_but_the_gateway(stack: Stack) -> None:
    orders_web = f"http://127.0.0.1:{stack.ports['orders-web']}/orders"
    body = {**ORDER_BODY, "customer_id": "victim"}
    async with client_of_its_own_address() as http:
        posted = await answer(http, "POST", orders_web, json=body, headers={"Idempotency-Key": "bypass"})
        listed = await answer(http, "GET", orders_web, params={"customer_id": "victim"})
    assert (posted[0], listed[0]) == (401, 401)
    assert await fetchval(stack.orders_database_url, "SELECT count(*) FROM orders WHERE customer_id = 'victim'") == 0
