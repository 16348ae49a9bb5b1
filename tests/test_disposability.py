"""Graceful shutdown (factor IX): each process type is sent SIGTERM with work held in flight in
it — order requests, a relay batch, NotificationSent messages, emails — and the work is let go
only once the shutdown is under way: all of it still finishes, and the process exits 0."""

from __future__ import annotations

import pytest

from harness.inflight import HOLDS, graceful_stop
from harness.procfile import process_types
from harness.stack import Stack


@pytest.mark.parametrize(
    "process",
    [pytest.param(name, marks=pytest.mark.factor("IX", kind.service)) for name, kind in process_types().items()],
)
async def test_sigterm_with_work_in_flight_finishes_the_work_and_exits_zero(stack: Stack, process: str) -> None:
    tokens = await stack.tokens([f"in-flight-{number}" for number in range(5)])

    async with HOLDS[process](stack, tokens) as in_flight:
        stop = await graceful_stop(stack.processes[process], in_flight)

    assert stop.problems == [], f"{in_flight.what}: {stop.problems}"
    assert stop.code == 0, stack.processes[process].output()
