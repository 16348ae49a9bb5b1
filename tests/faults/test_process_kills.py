"""kill -9 of each process type mid-stream, then a restart: nothing acknowledged is lost,
nothing is done twice, and the system drains by itself. What the system knew of an order
placed before the kill lived in its backing services, none in the process (factor VI)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import aiohttp
import asyncpg
import pytest

from harness.api import Customer
from harness.invariants import record, settle
from harness.procfile import process_types
from harness.stack import Stack
from harness.steady import steady_load
from shared.testing import eventually, fetchval

ORDERS_PER_SECOND = 50
# Acknowledged orders before the kill and after the restart: the fault lands mid-stream.
BEFORE, AFTER = 100, 100


@pytest.mark.parametrize(
    "process",
    [pytest.param(name, marks=pytest.mark.factor("VI", kind.service)) for name, kind in process_types().items()],
)
async def test_kill_9_and_restart_loses_and_duplicates_nothing(stack: Stack, process: str) -> None:
    async with aiohttp.ClientSession() as http:
        customer = Customer(http, stack.gateway_url, await stack.token("replaying"))
        key = str(uuid.uuid4())
        before = (await customer.place(key=key)).order
        async with steady_load(stack, per_second=ORDERS_PER_SECOND) as load:
            await load.reached(BEFORE, within=30)
            async with _mid_batch(stack, process) as interrupted:
                await stack.kill_and_restart(process, while_down=interrupted.count_left_behind)
            load.fault_over()
            resumed = len(load.acknowledged)
            await load.reached(resumed + AFTER)
        replayed = await customer.place(key=key)
    # The accepted edge: an email the server took from the killed notifier, never recorded.
    outcome = record(
        await settle(stack, load, f"kill -9 {process}, restart", may_email_twice=interrupted.taken_unrecorded),
        interrupted.when,
    )
    assert not outcome.violations, outcome
    assert replayed.headers.get("Idempotent-Replayed") == "true", "the replay after the restart made a new order"
    assert replayed.order["id"] == before["id"]


async def _nothing() -> None:
    return None


@dataclass
class Interrupted:
    """What a kill cut short, and how many emails it may make go out twice: those the SMTP
    server took from the killed notifier and it never recorded, counted while it is down."""

    when: str = ""
    taken_unrecorded: int = 0
    count_left_behind: Callable[[], Awaitable[None]] = field(default=_nothing)


@asynccontextmanager
async def _mid_batch(stack: Stack, process: str) -> AsyncIterator[Interrupted]:
    """For the consumers, hold a batch half done until the block ends, so the kill lands in
    it: the notifier with emails on the wire, the orders worker with its transaction open."""
    if process == "notifier":
        stack.mailbox.delay_seconds = 0.5
        interrupted = Interrupted()

        async def count_left_behind() -> None:
            # Emails whose DATA had arrived are the server's now, answered or not.
            await eventually(lambda: stack.mailbox.in_progress == 0 or None, description="the sink done with them")
            sent = {email["X-Dozen-Order-Id"] for email in stack.mailbox.received()}
            recorded = await fetchval(
                stack.notifier_database_url, "SELECT array_agg(order_id::text) FROM notifications"
            )
            interrupted.taken_unrecorded = len(sent - set(recorded or []))

        interrupted.count_left_behind = count_left_behind
        try:
            await eventually(
                lambda: stack.mailbox.in_progress >= 2, timeout_seconds=30, description="a batch's emails on the wire"
            )
            interrupted.when = f"killed with {stack.mailbox.in_progress} emails of a batch on the wire"
            yield interrupted
            interrupted.when += f", {interrupted.taken_unrecorded} taken by the server and never recorded"
        finally:
            stack.mailbox.delay_seconds = 0.0
    elif process == "orders-worker":
        # Only the worker writes the inbox: locked, its batch waits mid-transaction.
        holder = await asyncpg.connect(stack.orders_database_url)
        try:
            async with holder.transaction():
                await holder.execute("LOCK TABLE inbox IN EXCLUSIVE MODE")
                await eventually(
                    lambda: _worker_waiting_on_the_lock(stack),
                    timeout_seconds=30,
                    description="the worker's batch waiting",
                )
                yield Interrupted("killed with a batch's transaction open, waiting on a lock")
        finally:
            await holder.close()
    else:
        yield Interrupted()


async def _worker_waiting_on_the_lock(stack: Stack) -> bool | None:
    waiting = await fetchval(
        stack.orders_database_url,
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'",
    )
    return True if waiting else None
