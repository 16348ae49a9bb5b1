"""SIGTERM rolling restart of the two HTTP process types, two instances each, under load:
readiness goes red, the rotation moves on, in-flight requests finish — no request fails."""

from __future__ import annotations

import time

import pytest

from harness.api import ORDERS_PATH
from harness.invariants import record, settle
from harness.stack import Stack
from harness.steady import steady_load

ORDERS_PER_SECOND = 50
# Orders acknowledged between one instance's restart and the next: each is back in rotation.
BETWEEN_RESTARTS = 50


@pytest.fixture
def proxied_links() -> bool:
    # Clients round-robin over the ready gateways; gateways reach orders web through a
    # proxy that routes by readiness, as a Kubernetes Service would.
    return True


async def test_rolling_restart_of_gateway_and_orders_web_fails_no_request(stack: Stack) -> None:
    second_orders_web = await stack.start_instance("orders-web")
    second_gateway = await stack.start_instance("gateway")
    instances = {"orders-web": ["orders-web", second_orders_web], "gateway": ["gateway", second_gateway]}
    async with steady_load(stack, per_second=ORDERS_PER_SECOND) as load:
        await load.reached(100)
        started = time.monotonic()
        for name in [*instances["orders-web"], *instances["gateway"]]:
            await stack.restart_gracefully(name)
            await load.reached(len(load.acknowledged) + BETWEEN_RESTARTS)
        rolled_in = time.monotonic() - started
        load.fault_over()
    outcome = record(
        await settle(stack, load, "SIGTERM rolling restart (2 gateways, 2 orders web)"),
        f"4 instances restarted one by one in {rolled_in:.1f} s; failed requests: {sum(load.refused.values())}",
    )
    assert load.refused == {}, f"failed requests during the rolling restart: {load.why_refused}"
    # Not even one the client had to try again: no request failed, first time round either.
    assert load.retried == 0, f"requests tried again during the rolling restart: {load.retried}"
    assert not outcome.violations, outcome
    # Each restarted instance took its share again: the rotation brought it back.
    served = {name: _orders_served(stack, name) for names in instances.values() for name in names}
    assert all(count > 0 for count in served.values()), served


def _orders_served(stack: Stack, name: str) -> int:
    records = stack.processes[name].records
    if name.startswith("orders-web"):
        # An internal API: its access lines are at DEBUG; each order it took says so itself.
        return sum(1 for record in records if record.get("message") == "order accepted")
    return sum(
        1 for record in records if record.get("http_route") == ORDERS_PATH and record.get("http_method") == "POST"
    )
