"""Backing services are attached resources (factor IV): each service's is swapped for another
by changing one variable and restarting, and an order then shows the new one in use and the
old one untouched — orders onto a second PostgreSQL database (migrated by its own one-off
first), the gateway's rate limit onto another Redis database, the notifier onto another
mail server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import pytest
import redis.asyncio

from gateway.ratelimit import KEY_PREFIX
from harness.api import Customer
from harness.procfile import of_service
from harness.stack import Stack
from shared.testing import eventually, fetchval
from shared.testing.plugin import NewDatabase
from shared.testing.smtp import SmtpSink


@pytest.fixture
def extra_env() -> dict[str, str]:
    # A customer's rate-limit state lives one emission interval: 100 s at this rate, long
    # enough to look for it in both Redis databases after the order.
    return {"GATEWAY_RATE_LIMIT_PER_SECOND": "0.01"}


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        yield session


async def swap(stack: Stack, name: str, variable: str, value: str) -> None:
    """Restart ``name`` with ``variable`` changed and nothing else."""
    before = stack.processes[name].env
    await stack.restart_gracefully(name, {variable: value})
    after = stack.processes[name].env
    assert {key for key in before.keys() | after.keys() if before.get(key) != after.get(key)} == {variable}


async def notified(database_url: str, order_id: str) -> bool:
    return bool(await fetchval(database_url, "SELECT status = 'notified' FROM orders WHERE id = $1::uuid", order_id))


@pytest.mark.factor("IV", "orders")
async def test_orders_moves_onto_a_second_database_by_one_variable(
    stack: Stack, new_database: NewDatabase, http: aiohttp.ClientSession
) -> None:
    second, variable = await new_database(), "ORDERS_DATABASE_URL"
    migrated = stack.launch("orders", ["migrate"], stack.processes["orders-web"].env | {variable: second})
    await migrated.start()
    assert await migrated.wait(timeout_seconds=60) == 0, migrated.output()

    for name in of_service("orders"):
        await swap(stack, name, variable, second)
    order = (await Customer(http, stack.gateway_url, await stack.token("swapped-orders")).place()).order

    await eventually(lambda: notified(second, order["id"]), description="the order notified in the second database")
    assert (
        await fetchval(stack.orders_database_url, "SELECT count(*) FROM orders WHERE id = $1::uuid", order["id"]) == 0
    )


@pytest.mark.factor("IV", "gateway")
async def test_the_gateway_keeps_its_rate_limits_in_another_redis_database_by_one_variable(
    stack: Stack, http: aiohttp.ClientSession
) -> None:
    variable = "GATEWAY_REDIS_URL"
    first = stack.processes["gateway"].env[variable]
    parts = urlsplit(first)
    second = urlunsplit(parts._replace(path=f"/{(int(parts.path.strip('/') or 0) + 1) % 16}"))

    await swap(stack, "gateway", variable, second)
    customer = "swapped-rate-limit"
    await Customer(http, stack.gateway_url, await stack.token(customer)).place()

    assert await has_key(second, KEY_PREFIX + customer), "the customer's rate-limit state is not in the new database"
    assert not await has_key(first, KEY_PREFIX + customer), "the old database saw the customer"


async def has_key(url: str, key: str) -> bool:
    client = redis.asyncio.from_url(url)
    try:
        return bool(await client.exists(key))
    finally:
        await client.aclose()


@pytest.mark.factor("IV", "notifier")
async def test_the_notifier_mails_through_a_second_server_by_one_variable(
    stack: Stack, http: aiohttp.ClientSession
) -> None:
    second = SmtpSink()
    second.start()
    try:
        await swap(stack, "notifier", "NOTIFIER_SMTP_URL", second.url)
        order = (await Customer(http, stack.gateway_url, await stack.token("swapped-smtp")).place()).order
        await eventually(lambda: notified(stack.orders_database_url, order["id"]), description="the order notified")
        emails = [sink.received() for sink in (second, stack.mailbox)]
    finally:
        second.stop()

    assert [email["X-Dozen-Order-Id"] for email in emails[0]] == [order["id"]]
    assert emails[1] == [], "an email went through the old mail server"
