"""Admin tasks are one-off processes of the same release with the same config (factor XII):
each is run by `Stack.admin` with the environment of one of the long-running processes, does
its job on the live system, and exits 0 — the migrations (a second run applies nothing), a
token for a customer, a dead letter listed and replayed once its cause is fixed, and a
delivery lost downstream re-driven from the outbox."""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator
from typing import Any

import aio_pika
import aiohttp
import pytest

from harness.api import Customer
from harness.procfile import of_service
from harness.stack import Stack
from shared.messaging import dead_letter_names
from shared.testing import ServiceProcess, eventually, fetchval, wait_until_ready


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        yield session


async def one_off(stack: Stack, like: str, *command: str) -> ServiceProcess:
    process = await stack.admin(like, *command)
    assert process.returncode == 0, f"{' '.join(command)} exited {process.returncode}:\n{process.output()}"
    return process


async def depth(stack: Stack, queue: str) -> int:
    connection = await aio_pika.connect(stack.processes["notifier"].env["NOTIFIER_AMQP_URL"])
    async with connection:
        declared = await (await connection.channel()).declare_queue(queue, passive=True)
        return int(declared.declaration_result.message_count or 0)


async def notified(stack: Stack, order_id: str) -> bool:
    query = "SELECT status = 'notified' FROM orders WHERE id = $1::uuid"
    return bool(await fetchval(stack.orders_database_url, query, order_id))


@pytest.mark.parametrize(
    "service", [pytest.param(name, marks=pytest.mark.factor("XII", name)) for name in ("orders", "notifier")]
)
async def test_migrate_run_again_as_a_one_off_applies_nothing(stack: Stack, service: str) -> None:
    migrate = await one_off(stack, of_service(service)[0], "migrate")

    assert [record.get("applied") for record in migrate.records if record.get("message") == "migrations done"] == [[]]


@pytest.mark.factor("XII", "gateway")
async def test_a_token_from_the_issue_token_one_off_is_accepted_by_the_running_gateway(
    stack: Stack, http: aiohttp.ClientSession
) -> None:
    issued = await one_off(stack, "gateway", "issue-token", "--subject", "admin-token")

    assert await Customer(http, stack.gateway_url, issued.lines[-1]).orders() == []


@pytest.mark.factor("XII", "notifier")
async def test_a_parked_email_is_listed_then_delivered_once_by_the_dlq_one_offs(
    stack: Stack, http: aiohttp.ClientSession
) -> None:
    customer, queue = "admin-parked", stack.processes["notifier"].env["NOTIFIER_QUEUE"]
    stack.mailbox.refuse_mailbox(customer)
    try:
        order = (await Customer(http, stack.gateway_url, await stack.token(customer)).place()).order
        await eventually(lambda: depth(stack, dead_letter_names(queue)[1]), description="the order's event parked")
        listing = await one_off(stack, "notifier", "dlq", "list")
    finally:
        stack.mailbox.refuse_mailbox(customer, None)
    await one_off(stack, "notifier", "dlq", "replay")

    listed: list[dict[str, Any]] = [record["dead_letter"] for record in listing.records if "dead_letter" in record]
    assert [str(letter["reason"]).split(":")[0] for letter in listed] == ["unprocessable"]
    await eventually(lambda: notified(stack, order["id"]), description="the replayed order notified")
    assert [email["X-Dozen-Order-Id"] for email in stack.mailbox.received()] == [order["id"]]


@pytest.mark.factor("XII", "orders")
async def test_a_delivery_lost_downstream_is_redriven_from_the_outbox_by_a_one_off(
    stack: Stack, http: aiohttp.ClientSession
) -> None:
    notifier, queue = stack.processes["notifier"], stack.processes["notifier"].env["NOTIFIER_QUEUE"]
    notifier.send_signal(signal.SIGTERM)
    assert await notifier.wait(timeout_seconds=30) == 0, notifier.output()
    order = (await Customer(http, stack.gateway_url, await stack.token("admin-lost")).place()).order
    await eventually(lambda: depth(stack, queue), description="the order's event waiting in the notifier's queue")
    connection = await aio_pika.connect(notifier.env["NOTIFIER_AMQP_URL"])
    async with connection:
        purged = await (await (await connection.channel()).declare_queue(queue, passive=True)).purge()
    assert purged.message_count == 1, "the delivery to lose"
    stack.processes["notifier"] = successor = notifier.twin()
    await successor.start()
    await wait_until_ready(stack.management_ports["notifier"], what="notifier", process=successor)
    assert not await notified(stack, order["id"])

    await one_off(stack, "orders-relay", "outbox", "redrive", "--order", order["id"])

    await eventually(lambda: notified(stack, order["id"]), description="the re-driven order notified")
