"""kill -9 of each process type mid-stream, then a restart: nothing acknowledged is lost,
nothing is done twice, and the system drains by itself. What the system knew of an order
placed before the kill lived in its backing services, none in the process (factor VI)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
import asyncpg
import pytest

from harness.api import Customer
from harness.invariants import record, settle
from harness.procfile import process_types
from harness.stack import Stack
from harness.steady import steady_load
from notifier.settings import WorkerSettings as NotifierSettings
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
            async with _mid_batch(stack, process) as (when, may_email_twice):
                await stack.kill_and_restart(process)
            load.fault_over()
            resumed = len(load.acknowledged)
            await load.reached(resumed + AFTER)
        replayed = await customer.place(key=key)
    # The accepted edge: an email the server took from the killed notifier, never recorded.
    outcome = record(await settle(stack, load, f"kill -9 {process}, restart", may_email_twice=may_email_twice), when)
    assert not outcome.violations, outcome
    assert replayed.headers.get("Idempotent-Replayed") == "true", "the replay after the restart made a new order"
    assert replayed.order["id"] == before["id"]


@asynccontextmanager
async def _mid_batch(stack: Stack, process: str) -> AsyncIterator[tuple[str, int]]:
    """For the consumers, hold a batch half done until the block ends, so the kill lands in
    it: the notifier with emails on the wire, the orders worker with its transaction open.
    Gives what the kill interrupted, and how many emails it may make go out twice."""
    if process == "notifier":
        stack.mailbox.delay_seconds = 0.5
        try:
            await eventually(
                lambda: stack.mailbox.in_progress >= 2, timeout_seconds=30, description="a batch's emails on the wire"
            )
            # Each of the notifier's SMTP sessions may have had one email taken, none recorded.
            yield (
                f"killed with {stack.mailbox.in_progress} emails of a batch on the wire, none recorded",
                NotifierSettings.model_fields["smtp_connections"].default,
            )
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
                yield "killed with a batch's transaction open, waiting on a lock", 0
        finally:
            await holder.close()
    else:
        yield "", 0


async def _worker_waiting_on_the_lock(stack: Stack) -> bool | None:
    waiting = await fetchval(
        stack.orders_database_url,
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'",
    )
    return True if waiting else None
