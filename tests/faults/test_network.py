"""Network faults on every link between processes (gateway → orders web, every process →
PostgreSQL and → RabbitMQ): added latency, then every open connection reset. Requests may
fail meanwhile; nothing acknowledged may be lost or done twice, and nothing needs a restart."""

from __future__ import annotations

import pytest

from harness.invariants import record, settle
from harness.stack import Stack
from harness.steady import steady_load

ORDERS_PER_SECOND = 50
LATENCY_SECONDS = 0.02
RESETS = 3


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
