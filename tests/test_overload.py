"""Past capacity, real processes refuse at once (503 with Retry-After, never a timeout), and a
client that asks again under the same Idempotency-Key gets exactly one order."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import aiohttp
import asyncpg
import pytest

from harness.api import ORDER_BODY, ORDERS_PATH
from harness.stack import Stack
from shared.testing import eventually, fetchval

HELD = 2


@pytest.fixture
def extra_env() -> dict[str, str]:
    # A gateway that works on two requests at once: a capacity the test reaches with a few.
    return {"GATEWAY_MAX_IN_FLIGHT": str(HELD), "GATEWAY_UPSTREAM_MAX_CONNECTIONS": str(HELD)}


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
        yield session


async def place(http: aiohttp.ClientSession, stack: Stack, token: str, key: str) -> aiohttp.ClientResponse:
    headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": key}
    async with http.post(f"{stack.gateway_url}{ORDERS_PATH}", json=ORDER_BODY, headers=headers) as response:
        await response.read()
        return response


async def capacity_used(http: aiohttp.ClientSession, stack: Stack) -> bool:
    async with http.get(f"http://127.0.0.1:{stack.management_ports['gateway']}/metrics") as answer:
        text = await answer.text()
    gauge = "dozen_http_server_requests_in_flight "
    in_flight = sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(gauge))
    # The scrape that asks is in flight too.
    return in_flight >= HELD + 1


async def test_past_capacity_the_gateway_refuses_at_once_and_a_same_key_retry_makes_one_order(
    stack: Stack, http: aiohttp.ClientSession
) -> None:
    [token] = await stack.tokens(["busy"])
    blocker = await asyncpg.connect(stack.orders_database_url)
    try:
        # Capacity used up: the orders in flight wait at their INSERT, behind a lock held here.
        transaction = blocker.transaction()
        await transaction.start()
        await blocker.execute("LOCK TABLE orders IN EXCLUSIVE MODE")
        held = [asyncio.create_task(place(http, stack, token, f"held-{number}")) for number in range(HELD)]
        await eventually(lambda: capacity_used(http, stack), description="capacity in use")

        keys = [f"refused-{number}" for number in range(10)]
        refused = await asyncio.gather(*(place(http, stack, token, key) for key in keys))

        # Answered while the lock still holds everything admitted: refused, not queued.
        assert [response.status for response in refused] == [503] * len(keys)
        assert {response.headers["Retry-After"] for response in refused} == {"1"}
        assert {response.content_type for response in refused} == {"application/problem+json"}
        assert not any(task.done() for task in held)
        await transaction.rollback()
        assert [response.status for response in await asyncio.gather(*held)] == [201] * HELD
    finally:
        await blocker.close()

    retried = [await place(http, stack, token, key) for key in keys]
    replayed = [await place(http, stack, token, key) for key in keys]

    assert [response.status for response in retried + replayed] == [201] * 2 * len(keys)
    assert all(response.headers.get("Idempotent-Replayed") == "true" for response in replayed)
    assert await fetchval(stack.orders_database_url, "SELECT count(*) FROM orders") == HELD + len(keys)


async def test_a_client_that_gave_up_waiting_retries_under_the_same_key_and_gets_the_one_order(
    stack: Stack, http: aiohttp.ClientSession
) -> None:
    [token] = await stack.tokens(["impatient"])
    key = str(uuid.uuid4())
    blocker = await asyncpg.connect(stack.orders_database_url)
    try:
        transaction = blocker.transaction()
        await transaction.start()
        await blocker.execute("LOCK TABLE orders IN EXCLUSIVE MODE")
        impatient = aiohttp.ClientTimeout(total=1)
        headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": key}
        with pytest.raises(TimeoutError):
            await http.post(f"{stack.gateway_url}{ORDERS_PATH}", json=ORDER_BODY, headers=headers, timeout=impatient)
        await transaction.rollback()
    finally:
        await blocker.close()

    # The first attempt's order may or may not exist by now: either way, one order in the end.
    answer = await place(http, stack, token, key)
    assert answer.status == 201
    assert await fetchval(stack.orders_database_url, "SELECT count(*) FROM orders") == 1
    assert await fetchval(stack.orders_database_url, "SELECT count(*) FROM outbox") == 1
