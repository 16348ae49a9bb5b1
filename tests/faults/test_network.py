"""Network faults on the links between processes (gateway → orders web and → Redis, every
process → PostgreSQL and → RabbitMQ): added latency, every open connection reset, a link
blackholed, concurrent duplicates across resets. Requests may fail meanwhile; nothing
acknowledged may be lost or done twice, and nothing needs a restart."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import aiohttp
import pytest

from harness.api import ORDER_BODY, ORDERS_PATH
from harness.invariants import record, settle
from harness.probes import metric_sum
from harness.proxy import FaultProxy
from harness.stack import Stack
from harness.steady import steady_load

ORDERS_PER_SECOND = 50
LATENCY_SECONDS = 0.02
RESETS = 3
# Past the 100 ms a rate-limit check should take, within the gateway's 0.5 s Redis timeout.
REDIS_LATENCY_SECONDS = 0.15
DUPLICATES = 50
# Tries per duplicate: refusals (the customer's burst is 40) are waited out as told.
PATIENCE = 8


@pytest.fixture
def proxied_links() -> bool:
    return True


async def test_latency_then_connection_resets_on_every_link_lose_and_duplicate_nothing(stack: Stack) -> None:
    links = stack.links
    reset: dict[str, int] = dict.fromkeys(links, 0)
    failed: dict[str, int] = {}
    async with steady_load(stack, per_second=ORDERS_PER_SECOND) as load:
        await load.reached(100)
        for proxy in links.values():
            proxy.latency_seconds = LATENCY_SECONDS
        await load.reached(len(load.acknowledged) + 3 * ORDERS_PER_SECOND, within=90)
        for proxy in links.values():
            proxy.latency_seconds = 0.0
        failed["latency"] = sum(load.refused.values())
        # Each round cuts whatever is open then, mid-request and mid-message alike.
        for _ in range(RESETS):
            for name, proxy in links.items():
                reset[name] += proxy.reset_all()
            await load.reached(len(load.acknowledged) + ORDERS_PER_SECOND, within=90)
        load.fault_over()
        failed["resets"] = sum(load.refused.values()) - failed["latency"]
        await load.reached(len(load.acknowledged) + 100, within=90)
    failed["after"] = sum(load.refused.values()) - failed["latency"] - failed["resets"]
    outcome = record(
        await settle(stack, load, f"{LATENCY_SECONDS * 1000:.0f} ms latency ~3 s, then {RESETS} rounds of resets"),
        "connections reset: "
        + ", ".join(f"{name} {count}" for name, count in reset.items())
        + f"; failed requests during latency {failed['latency']}, resets {failed['resets']},"
        f" after {failed['after']} ({load.refused})",
    )
    # The faults really happened on every link, or this test proves nothing.
    assert all(count > 0 for count in reset.values()), reset
    assert not outcome.violations, outcome
    # Recovered by itself: once the faults are over, requests succeed again.
    assert failed["after"] == 0, failed


# A link that drops every packet for a while (a partition, a dead switch port), then heals, or
# one that is slow, or a server that is down. PostgreSQL blackholed: statements time out, which is an outage (503s;
# consumers wait, nothing dead-lettered). RabbitMQ blackholed: publishes go unconfirmed, and
# the outbox keeps what the relay could not hand over. A minute each: far past every timeout,
# pool and reconnect delay on the way. Redis blackholed or slow: no request waits on the
# limiter past GATEWAY_REDIS_SLOW_SECONDS, and each gateway keeps the limits itself meanwhile:
# orders are still accepted. Redis down: the same, told at once instead of by the budget.
@asynccontextmanager
async def _slow(link: FaultProxy) -> AsyncIterator[None]:
    link.latency_seconds = REDIS_LATENCY_SECONDS
    try:
        yield
    finally:
        link.latency_seconds = 0.0


LINK_FAULTS: dict[str, tuple[str, Callable[[FaultProxy], AbstractAsyncContextManager[None]], int]] = {
    "PostgreSQL blackholed ~60 s": ("postgres", FaultProxy.blackholed, 60),
    "RabbitMQ blackholed ~60 s": ("rabbitmq", FaultProxy.blackholed, 60),
    "Redis down (connections reset, then refused) ~10 s": ("redis", FaultProxy.down, 10),
    "Redis blackholed ~10 s": ("redis", FaultProxy.blackholed, 10),
    f"Redis {REDIS_LATENCY_SECONDS * 1000:.0f} ms slow each way ~10 s": ("redis", _slow, 10),
}


@pytest.mark.parametrize("fault", list(LINK_FAULTS))
async def test_a_link_down_blackholed_or_slow_loses_and_duplicates_nothing(stack: Stack, fault: str) -> None:
    name, faulty, seconds = LINK_FAULTS[fault]
    async with steady_load(stack, per_second=ORDERS_PER_SECOND) as load:
        await load.reached(100)
        accepted_before = len(load.acknowledged)
        async with faulty(stack.links[name]):
            await asyncio.sleep(seconds)  # how long the fault lasts, not synchronisation
        accepted_during = len(load.acknowledged) - accepted_before
        load.fault_over()
        await load.reached(len(load.acknowledged) + 100, within=90)
    stepped_aside = await metric_sum(stack.management_ports["gateway"], "dozen_gateway_rate_limit_failures_total")
    outcome = record(
        await settle(stack, load, fault),
        f"accepted during it: {accepted_during}; failed: {load.refused}; "
        f"limiter stepped aside {stepped_aside:.0f} times",
    )
    if name == "redis":
        # The fault reached the limiter, and the limiter is not what the API depends on.
        assert stepped_aside > 0
        assert accepted_during >= 5 * ORDERS_PER_SECOND, accepted_during
        assert load.refused == {}, load.why_refused
        assert load.retried == 0, f"answers of unknown outcome (a 500, say): {load.retried}"
    assert not outcome.violations, outcome


async def test_fifty_concurrent_duplicates_of_one_key_with_resets_on_the_way_make_one_order(stack: Stack) -> None:
    async with steady_load(stack, per_second=ORDERS_PER_SECOND) as load:
        await load.reached(100)
        customer, key = load.customers[0], str(uuid.uuid4())
        load.issued[key] = customer
        token = await stack.token(customer)

        async def resetting() -> int:
            resets = 0
            for _ in range(RESETS):
                resets += stack.links["orders-web"].reset_all()
                await asyncio.sleep(0.05)  # the fault's rhythm, not synchronisation
            return resets

        answers, resets = await asyncio.gather(
            asyncio.gather(*(_patient_post(stack, token, key) for _ in range(DUPLICATES))), resetting()
        )
        load.fault_over()
        await load.reached(len(load.acknowledged) + 100, within=90)
    outcome = record(
        await settle(stack, load, f"{DUPLICATES} concurrent duplicates of one key, gateway→orders reset"),
        f"answers: {sorted(set(answers))[:3]}...; connections reset {resets}",
    )
    placed = {answer for answer in answers if not answer.startswith("HTTP")}
    assert len(placed) == 1, answers
    assert not outcome.violations, outcome


async def _patient_post(stack: Stack, token: str, key: str) -> str:
    """The order id the gateway answered with, after retrying unknowns and refusals; or the last failure."""
    headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": key}
    failure = "HTTP none"
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
        for _ in range(PATIENCE):
            try:
                async with http.post(f"{stack.gateway_url}{ORDERS_PATH}", json=ORDER_BODY, headers=headers) as answer:
                    if answer.status == 201:
                        return str((await answer.json())["id"])
                    failure = f"HTTP {answer.status}"
                    # Told when to come back (a refusal): the client's own wait, as told.
                    await asyncio.sleep(float(answer.headers.get("Retry-After", "0")))
            except (aiohttp.ClientError, TimeoutError) as error:
                failure = f"HTTP {type(error).__name__}"
    return failure
