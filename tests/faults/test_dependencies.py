"""Backing services failing under steady load: the pipeline waits, retries and catches up
by itself, and nothing acknowledged is lost or done twice."""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager

import aiohttp
import pytest

from harness.api import ORDER_BODY, ORDERS_PATH
from harness.faults import FAULTS, Targets
from harness.invariants import record, settle
from harness.stack import Stack
from harness.steady import steady_load
from shared.testing import eventually
from tests.faults.servers import (
    postgres_read_only,
    postgres_stopped,
    rabbitmq_crashed,
    rabbitmq_memory_alarm,
    rabbitmq_stopped,
)

ORDERS_PER_SECOND = 50


async def test_smtp_refusing_for_a_while_delays_mail_but_loses_none(stack: Stack) -> None:
    # About two seconds of refusals (100 orders at 50/s): inside the notifier's retry budget
    # (5 attempts, backoff from 0.5 s), so every email goes out once the server is back.
    async with steady_load(stack, per_second=ORDERS_PER_SECOND) as load:
        await load.reached(100)
        # The very fault `make fault NAME=smtp-refusing` switches (harness.faults).
        refusing, targets = FAULTS["smtp-refusing"], Targets(stack.mailbox, root_pid=os.getpid())
        await refusing.switch_on(targets)
        refused_from = len(load.acknowledged)
        try:
            await load.reached(refused_from + 100)
        finally:
            await refusing.switch_off(targets)
        load.fault_over()
        await load.reached(len(load.acknowledged) + 100)
    outcome = record(await settle(stack, load, "SMTP refusing (451) ~2 s"), "within the retry budget: no dead letter")
    assert not outcome.violations, outcome


# What happens to the broker for ~10 s. Stopped: every connection drops and reconnects. Its VM
# killed: the same with no goodbye, and the node recovers its queues from disk as it boots. Alarmed
# (memory): RabbitMQ blocks every connection that publishes, so the relay's and the notifier's
# publishes wait it out unconfirmed, counting nothing against a row or a message, while the
# notifier consumes on a connection of its own.
BROKER_FAULTS: dict[str, Callable[[str], AbstractAsyncContextManager[None]]] = {
    "RabbitMQ stopped ~10 s": rabbitmq_stopped,
    "RabbitMQ's VM killed (kill -9) ~10 s, then booted": rabbitmq_crashed,
    "RabbitMQ memory alarm ~10 s": rabbitmq_memory_alarm,
}


@pytest.mark.parametrize("fault", list(BROKER_FAULTS))
async def test_the_broker_stopped_or_alarmed_for_ten_seconds_orders_are_still_accepted_and_all_delivered_after(
    stack: Stack, amqp_url: str, fault: str
) -> None:
    async with steady_load(stack, per_second=ORDERS_PER_SECOND) as load:
        await load.reached(100)
        async with BROKER_FAULTS[fault](amqp_url):
            # Accepting needs only PostgreSQL: the outbox holds the events meanwhile.
            from_ = len(load.acknowledged)
            await load.reached(from_ + 10 * ORDERS_PER_SECOND)
            accepted_during = len(load.acknowledged) - from_
        load.fault_over()
        await load.reached(len(load.acknowledged) + 100, within=90)
    outcome = record(await settle(stack, load, fault), f"accepted during it: {accepted_during}")
    assert accepted_during >= 10 * ORDERS_PER_SECOND
    assert not outcome.violations, outcome


# A clean stop, and a crash (no checkpoint; the server runs crash recovery as it starts).
POSTGRES_STOPS = {"PostgreSQL stopped ~10 s": "fast", "PostgreSQL crashed (stop -m immediate) ~10 s": "immediate"}


@pytest.mark.parametrize("fault", list(POSTGRES_STOPS))
async def test_postgres_down_is_a_quick_503_and_red_readiness_then_everything_recovers(
    stack: Stack, postgres_server_url: str, fault: str
) -> None:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
        token = await stack.token("fault-pg")
        orders_ready = f"http://127.0.0.1:{stack.management_ports['orders-web']}/readyz"

        async def readiness() -> int:
            async with http.get(orders_ready) as answer:
                return answer.status

        async with steady_load(stack, per_second=ORDERS_PER_SECOND) as load:
            await load.reached(100)
            async with postgres_stopped(postgres_server_url, mode=POSTGRES_STOPS[fault]):
                await eventually(
                    lambda: _true_if(readiness, 503), timeout_seconds=10, description="orders readiness red"
                )
                started = time.monotonic()
                headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": "during-the-outage"}
                async with http.post(f"{stack.gateway_url}{ORDERS_PATH}", json=ORDER_BODY, headers=headers) as answer:
                    refusal = (answer.status, answer.content_type, time.monotonic() - started)
                # Down for ~10 s of load: longer than the consumers' retry budget (5 attempts,
                # 7.5 s of backoff), which a database outage must not use up.
                await load.refused_another(10 * ORDERS_PER_SECOND)
            load.fault_over()
            # No process is restarted: each finds the database again by itself.
            await eventually(lambda: _true_if(readiness, 200), timeout_seconds=30, description="orders ready again")
            await load.reached(len(load.acknowledged) + 100)
    outcome = record(
        await settle(stack, load, fault),
        f"an order during the outage: HTTP {refusal[0]} in {refusal[2] * 1000:.0f} ms; readiness red; "
        f"refused: {load.refused}",
    )
    assert refusal[:2] == (503, "application/problem+json")
    # Every refusal an outage answer a client can retry on: a server that went away mid-statement included.
    assert set(load.refused) == {"HTTP 503"}, load.refused
    assert not outcome.violations, outcome


async def test_postgres_taking_no_writes_for_ten_seconds_is_an_outage_waited_out(
    stack: Stack, postgres_server_url: str
) -> None:
    # As a primary demoted in a failover answers: reads work, every write is refused. Orders
    # are refused with 503 (a client retries), and consumers wait instead of dead-lettering.
    async with steady_load(stack, per_second=ORDERS_PER_SECOND) as load:
        await load.reached(100)
        async with postgres_read_only(postgres_server_url):
            await load.refused_another(10 * ORDERS_PER_SECOND)
        load.fault_over()
        await load.reached(len(load.acknowledged) + 100)
    outcome = record(await settle(stack, load, "PostgreSQL read-only ~10 s"), f"refused: {load.refused}")
    assert set(load.refused) == {"HTTP 503"}, load.refused
    assert not outcome.violations, outcome


async def test_the_smtp_server_dropping_the_connection_after_data_sends_those_emails_twice_and_no_more(
    stack: Stack,
) -> None:
    # The server took each email, and its answer never came: the notifier cannot know, and
    # sends again. That is the one edge where an email may go out twice, once per drop.
    drops = 5
    async with steady_load(stack, per_second=ORDERS_PER_SECOND) as load:
        await load.reached(100)
        stack.mailbox.drop_after_data(drops)
        await eventually(
            lambda: True if stack.mailbox.drops_pending == 0 else None,
            timeout_seconds=30,
            description="every drop acted out",
        )
        load.fault_over()
        await load.reached(len(load.acknowledged) + 100)
    outcome = record(
        await settle(stack, load, f"SMTP drops the connection after DATA, {drops} times", may_email_twice=drops),
        "each dropped email sent again: the sender cannot know it was taken",
    )
    assert not outcome.violations, outcome


async def _true_if(probe: Callable[[], Awaitable[int]], status: int) -> bool | None:
    try:
        return True if await probe() == status else None
    except aiohttp.ClientError:
        return None
