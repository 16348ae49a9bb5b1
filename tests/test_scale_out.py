"""Scale out by the process model (factor VIII): a second gateway, relay and notifier join the
running ones with the same config, and 120 orders placed through both gateways at once are
each published, emailed, recorded and announced exactly once, every instance doing a share."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator

import aiohttp
import pytest

from harness.api import Customer
from harness.probes import metric_sum, notifications_per_order, tapped
from harness.stack import Stack
from shared.events import NotificationSentV1, OrderCreatedV1
from shared.testing import eventually

ORDERS = 120
CUSTOMERS = 6
# Per process type scaled out: the counter whose growth says an instance did work.
WORK = {
    "gateway": ("dozen_http_server_request_duration_seconds_count", {"method": "POST"}),
    "orders-relay": ("dozen_outbox_published_total", {}),
    "notifier": ("dozen_messages_handled_total", {"outcome": "acked"}),
}


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        yield session


async def work_done(stack: Stack, instances: dict[str, list[str]]) -> dict[str, float]:
    return {
        name: await metric_sum(stack.management_ports[name], WORK[kind][0], **WORK[kind][1])
        for kind, names in instances.items()
        for name in names
    }


@pytest.mark.factor("VIII")
async def test_two_of_each_share_the_work_and_do_each_piece_once(stack: Stack, http: aiohttp.ClientSession) -> None:
    instances = {kind: [kind, await stack.start_instance(kind)] for kind in WORK}
    before = await work_done(stack, instances)
    tokens = await stack.tokens([f"scaled-{number}" for number in range(CUSTOMERS)])
    customers = [
        Customer(http, f"http://127.0.0.1:{stack.ports[gateway]}", token)
        for gateway in instances["gateway"]
        for token in tokens
    ]
    exchanges = [stack.processes["orders-relay"].env["ORDERS_EVENTS_EXCHANGE"]]
    exchanges.append(stack.processes["notifier"].env["NOTIFIER_EVENTS_EXCHANGE"])

    async with tapped(stack.processes["orders-relay"].env["ORDERS_AMQP_URL"], exchanges) as tap:
        replies = await asyncio.gather(*(customers[number % len(customers)].place() for number in range(ORDERS)))
        order_ids = [reply.order["id"] for reply in replies]
        await eventually(
            lambda: len(tap.subjects(NotificationSentV1.event_type)) >= ORDERS,
            timeout_seconds=60,
            description="every order announced (NotificationSent)",
        )
    work = {name: done - before[name] for name, done in (await work_done(stack, instances)).items()}

    assert len(set(order_ids)) == ORDERS
    published, announced = tap.subjects(OrderCreatedV1.event_type), tap.subjects(NotificationSentV1.event_type)
    emailed = Counter(str(email["X-Dozen-Order-Id"]) for email in stack.mailbox.received())
    recorded = await notifications_per_order(stack.notifier_database_url, order_ids)
    for what, counts in {
        "published": published,
        "announced": announced,
        "emailed": emailed,
        "recorded": recorded,
    }.items():
        wrong = {order_id: counts[order_id] for order_id in order_ids if counts[order_id] != 1}
        assert not wrong, (
            f"{len(wrong)} of {ORDERS} orders not {what} exactly once, e.g. {dict(list(wrong.items())[:3])}"
        )
    idle = [name for name, done in work.items() if done <= 0]
    assert not idle, f"{idle} did nothing: the work was not shared ({work})"
