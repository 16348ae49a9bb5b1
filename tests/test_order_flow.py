"""One order's whole journey, 200 times at once: gateway -> orders -> outbox -> relay -> RabbitMQ
-> notifier -> SMTP -> NotificationSent -> orders worker, every part a real process."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections import Counter
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import aiohttp
import jwt
import pytest

from gateway.settings import GatewaySettings
from gateway.tokens import TOKEN_TYPE
from harness.api import ORDERS_PATH, Customer
from harness.stack import JWT_SECRET, Stack
from shared.testing import eventually, fetch

from .conftest import FIGURES

ORDERS = 200
CUSTOMERS = 10


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        yield session


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


async def test_two_hundred_concurrent_orders_are_each_notified_exactly_once(
    stack: Stack, http: aiohttp.ClientSession
) -> None:
    tokens = await asyncio.gather(*(stack.token(f"customer-{number}") for number in range(CUSTOMERS)))
    customers = [Customer(http, stack.gateway_url, token) for token in tokens]

    placed = await asyncio.gather(*(customers[number % CUSTOMERS].place() for number in range(ORDERS)))

    placed_ids = {reply.order["id"] for reply in placed}
    assert len(placed_ids) == ORDERS

    async def all_notified() -> list[dict[str, Any]] | None:
        seen = [order for customer in customers for order in await customer.orders()]
        return seen if len(seen) == ORDERS and all(order["status"] == "notified" for order in seen) else None

    notified = await eventually(all_notified, timeout_seconds=90, interval_seconds=0.2, description="all notified")

    assert {order["id"] for order in notified} == placed_ids
    assert all(order["published_at"] and order["notified_at"] for order in notified)
    per_order = Counter(
        str(row["order_id"]) for row in await fetch(stack.notifier_database_url, "SELECT order_id FROM notifications")
    )
    assert set(per_order) == placed_ids
    assert set(per_order.values()) == {1}, "an order has more than one notification row"
    emails = Counter(email["X-Dozen-Order-Id"] for email in stack.mailbox.received())
    assert set(emails) == placed_ids
    assert set(emails.values()) == {1}, "an order got more than one email"
    latencies = [
        (datetime.fromisoformat(order["notified_at"]) - datetime.fromisoformat(order["created_at"])).total_seconds()
        for order in notified
    ]
    FIGURES.append(
        f"accepted -> notified over {ORDERS} concurrent orders: "
        f"p50 {statistics.median(latencies) * 1000:.0f} ms, p99 {percentile(latencies, 0.99) * 1000:.0f} ms, "
        f"max {max(latencies) * 1000:.0f} ms"
    )


def _expired_token(subject: str) -> str:
    """A token the gateway signed an hour ago for an hour (`issue-token` makes none expired)."""
    settings, now = GatewaySettings(jwt_secret=JWT_SECRET), int(time.time())
    claims = {"iss": settings.jwt_issuer, "aud": settings.jwt_audience, "sub": subject, "iat": now - 7200}
    return jwt.encode(
        claims | {"exp": now - 3600}, JWT_SECRET, algorithm=settings.jwt_algorithm, headers={"typ": TOKEN_TYPE}
    )


async def test_credentials_are_checked_and_customers_see_only_their_own(
    stack: Stack, http: aiohttp.ClientSession
) -> None:
    alice, bob = await stack.token("alice"), await stack.token("bob")
    expired = _expired_token("alice")
    # pragma: allowlist nextline secret
    forged = await stack.token("alice", env={"GATEWAY_JWT_SECRET": "a-different-secret-that-is-long-enough-too"})
    alices_order = (await Customer(http, stack.gateway_url, alice).place()).order
    url = f"{stack.gateway_url}{ORDERS_PATH}/{alices_order['id']}"

    async def status(headers: dict[str, str]) -> int:
        async with http.get(url, headers=headers) as response:
            return response.status

    assert await status({}) == 401
    assert await status(bearer(expired)) == 401
    assert await status(bearer(forged)) == 401
    assert await status(bearer(bob)) == 404
    assert await status(bearer(alice)) == 200
