"""Rate limits through a real Redis, shared by replicas; per replica while Redis does not answer."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import REGISTRY
from redis.asyncio import Redis

from gateway.app import create_app
from gateway.ratelimit import GCRA_SCRIPT
from shared.testing import free_port

from .support import bearer, redis_url, settings, valid_token

ORDERS = "/api/v1/orders"
Client = TestClient[web.Request, web.Application]


@pytest.fixture
def customer() -> str:
    # Each test's customer is new, so no earlier run's bucket is in Redis.
    return f"limited-{uuid.uuid4().hex[:12]}"


async def replica(orders_url: str, **overrides: Any) -> Client:
    values = {"rate_limit_per_second": 1.0, "rate_limit_burst": 5} | overrides
    client = TestClient(TestServer(create_app(settings(orders_url, **values))))
    await client.start_server()
    return client


async def statuses(client: Client, customer: str, count: int) -> list[int]:
    answers = []
    for _ in range(count):
        response = await client.get(ORDERS, headers=bearer(valid_token(customer)))
        answers.append(response.status)
    return answers


async def test_the_burst_passes_then_429_with_retry_after_as_a_problem(orders_url: str, customer: str) -> None:
    client = await replica(orders_url)
    try:
        assert await statuses(client, customer, 5) == [200] * 5
        limited = await client.get(ORDERS, headers=bearer(valid_token(customer)))
        assert limited.status == 429
        assert limited.content_type == "application/problem+json"
        assert int(limited.headers["Retry-After"]) >= 1
        # Another customer has a bucket of their own.
        assert await statuses(client, customer + "-other", 1) == [200]
    finally:
        await client.close()


async def test_a_replica_has_its_redis_connection_and_script_before_its_first_request(orders_url: str) -> None:
    redis = Redis.from_url(redis_url())
    try:
        # Every script Redis holds forgotten (the limiter's own among them; it loads it again if need be).
        await redis.script_flush()
        client = await replica(orders_url)
        try:
            assert await redis.script_exists(hashlib.sha1(GCRA_SCRIPT.encode()).hexdigest()) == [True]  # noqa: S324
        finally:
            await client.close()
    finally:
        await redis.aclose()


async def test_replicas_share_one_limit_through_redis(orders_url: str, customer: str) -> None:
    first, second = await replica(orders_url), await replica(orders_url)
    try:
        answers = await statuses(first, customer, 3) + await statuses(second, customer, 3)
        assert answers == [200] * 5 + [429]
    finally:
        await first.close()
        await second.close()


async def test_without_redis_each_replica_keeps_the_limit_itself_and_leaves_redis_alone_a_while(
    orders_url: str, customer: str
) -> None:
    def checked_locally() -> float:
        return REGISTRY.get_sample_value("dozen_gateway_rate_limit_local_total", {"scope": "customer"}) or 0.0

    def failures() -> float:
        return REGISTRY.get_sample_value("dozen_gateway_rate_limit_failures_total", {"error": "ConnectionError"}) or 0.0

    before, failed_before = checked_locally(), failures()
    client = await replica(
        orders_url,
        redis_url=f"redis://127.0.0.1:{free_port()}/0",
        redis_timeout_seconds=0.2,
        # Longer than the test: after the first failure, Redis is not asked again.
        redis_cooldown_seconds=60,
    )
    try:
        # Neither failing closed (every request refused) nor open (none refused).
        assert await statuses(client, customer, 8) == [200] * 5 + [429] * 3
        assert checked_locally() - before == 8
        assert failures() - failed_before == 1
    finally:
        await client.close()


async def test_requests_without_a_valid_token_are_limited_per_client_address_whatever_x_forwarded_for_says(
    orders_url: str,
) -> None:
    # Each run comes from an address of its own (all of 127.0.0.0/8 is loopback): Redis keeps
    # the last run's state a while.
    address = f"127.{uuid.uuid4().int % 250 + 1}.{uuid.uuid4().int % 250 + 1}.{uuid.uuid4().int % 250 + 1}"
    client = TestClient(
        TestServer(create_app(settings(orders_url, anonymous_rate_limit_per_second=0.1, anonymous_rate_limit_burst=3))),
        connector=aiohttp.TCPConnector(local_addr=(address, 0)),
    )
    await client.start_server()
    try:
        answers = []
        for attempt in range(5):
            spoofed = {"X-Forwarded-For": f"203.0.113.{attempt}", "X-Real-IP": f"203.0.113.{attempt}"}
            token = {} if attempt % 2 else bearer("not-a-token")
            answers.append((await client.get(ORDERS, headers=spoofed | token)).status)
        assert answers == [401] * 3 + [429] * 2
        limited = await client.get("/api/openapi.json")
        assert limited.status == 429
        assert int(limited.headers["Retry-After"]) >= 1
        # A customer with a valid token is limited as that customer, not by the address.
        assert (await client.get(ORDERS, headers=bearer(valid_token(f"known-{uuid.uuid4().hex[:8]}")))).status == 200
    finally:
        await client.close()


async def test_concurrent_requests_are_checked_together_and_the_burst_still_holds(
    orders_url: str, customer: str
) -> None:
    client = await replica(orders_url)
    try:
        token = valid_token(customer)
        answers = await asyncio.gather(*(client.get(ORDERS, headers=bearer(token)) for _ in range(8)))
        assert sorted(answer.status for answer in answers) == [200] * 5 + [429] * 3
    finally:
        await client.close()


async def test_past_its_time_budget_redis_is_not_waited_for_and_the_next_checks_are_the_replicas_own_a_while(
    orders_url: str, customer: str
) -> None:
    def count(name: str, labels: dict[str, str]) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    local, slow = (
        ("dozen_gateway_rate_limit_local_total", {"scope": "customer"}),
        (
            "dozen_gateway_rate_limit_failures_total",
            {"error": "Slow"},
        ),
    )
    before = count(*local), count(*slow)
    # No answer comes within the budget: it is far below what any round trip takes.
    client = await replica(orders_url, redis_slow_seconds=1e-9, redis_cooldown_seconds=60)
    try:
        assert await statuses(client, customer, 3) == [200] * 3
        assert (count(*local) - before[0], count(*slow) - before[1]) == (3, 1)
    finally:
        await client.close()
