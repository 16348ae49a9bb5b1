"""kill -9 of each process type mid-stream, then a restart: nothing acknowledged is lost,
nothing is done twice, and the system drains by itself."""

from __future__ import annotations

import pytest

from tests.stack import Stack

from .invariants import record, settle
from .load import steady_load

ORDERS_PER_SECOND = 50
# Acknowledged orders before the kill and after the restart: the fault lands mid-stream.
BEFORE, AFTER = 100, 100


@pytest.mark.parametrize("process", ["gateway", "orders-web", "orders-relay", "orders-worker", "notifier"])
async def test_kill_9_and_restart_loses_and_duplicates_nothing(stack: Stack, process: str) -> None:
    async with steady_load(stack, per_second=ORDERS_PER_SECOND) as load:
        await load.reached(BEFORE, within=30)
        await stack.kill_and_restart(process)
        load.fault_over()
        resumed = len(load.acknowledged)
        await load.reached(resumed + AFTER)
    outcome = record(await settle(stack, load, f"kill -9 {process}, restart"))
    assert outcome.lost == 0, outcome
    assert outcome.duplicated == 0, outcome
