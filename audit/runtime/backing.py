"""IV: backing services are attached resources, swapped by config alone. For each service one
of its backing services is replaced by another with a change to a single variable and a
restart — orders onto a second PostgreSQL database (migrated by its own one-off first), the
gateway's rate limit onto another Redis database, the notifier onto another mail server —
and an order then shows the new one in use and the old one untouched."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

import redis.asyncio

from audit.observe import changed_variables
from audit.runtime.findings import Findings
from audit.runtime.probes import place_order, wait_notified
from audit.runtime.system import AuditedSystem
from harness.procfile import of_service
from shared.testing import fetch

RATE_LIMIT_KEY = "dozen:gateway:rate:{customer}"


async def swapped(system: AuditedSystem, name: str, change: dict[str, str]) -> list[str]:
    """Restart ``name`` with ``change`` to its environment; what changed, as seen on the process."""
    before = system.process(name).env
    await system.stack.restart_gracefully(name, change)
    return changed_variables(before, system.process(name).env)


def only(variable: str, changed: list[str]) -> list[str]:
    return [] if changed == [variable] else [f"the swap changed {changed}, not only {variable}"]


async def check_backing_services(system: AuditedSystem, findings: Findings) -> None:
    await _orders_database(system, findings)
    await _gateway_redis(system, findings)
    await _notifier_smtp(system, findings)


async def _orders_database(system: AuditedSystem, findings: Findings) -> None:
    stack = system.stack
    spare, variable = system.spare_orders_database_url, "ORDERS_DATABASE_URL"
    migrate = stack.launch("orders", ["migrate"], stack.processes["orders-web"].env | {variable: spare})
    await migrate.start()
    if await migrate.wait(timeout_seconds=60) != 0:
        raise RuntimeError(f"orders migrate on the second database failed: {migrate.output()}")
    problems = []
    for name in of_service("orders"):
        problems += only(variable, await swapped(system, name, {variable: spare}))
    placed = await place_order(stack.gateway_url, await stack.token("audit-iv-orders"))
    order_id = str(placed.body.get("id"))
    await wait_notified(spare, [order_id])
    in_first = await fetch(stack.orders_database_url, "SELECT 1 FROM orders WHERE id = $1::uuid", order_id)
    if in_first:
        problems.append(f"order {order_id} was written to the first database too")
    findings.judge(
        "IV",
        "orders",
        problems,
        f"{variable} pointed at a second database (migrated by `orders migrate` with that one change), web, relay "
        f"and worker restarted with only that variable changed: order {order_id} stored there and notified; "
        "the first database never saw it",
    )


async def _gateway_redis(system: AuditedSystem, findings: Findings) -> None:
    stack = system.stack
    variable = "GATEWAY_REDIS_URL"
    before = stack.processes["gateway"].env[variable]
    parts = urlsplit(before)
    index = int(parts.path.strip("/") or 0)
    after = urlunsplit(parts._replace(path=f"/{(index + 1) % 16}"))
    problems = only(variable, await swapped(system, "gateway", {variable: after}))
    customer = "audit-iv-gateway"
    placed = await place_order(stack.gateway_url, await stack.token(customer))
    key = RATE_LIMIT_KEY.format(customer=customer)
    in_new, in_old = await _has_key(after, key), await _has_key(before, key)
    if placed.status != 201 or not in_new or in_old:
        problems.append(
            f"order answered {placed.status}; the customer's rate-limit state in the new database: {in_new}, "
            f"in the old: {in_old}"
        )
    findings.judge(
        "IV",
        "gateway",
        problems,
        f"{variable} pointed at Redis database {(index + 1) % 16} instead of {index} (only that variable changed): "
        "the customer's rate-limit state is kept there, the old database never saw it",
    )


async def _has_key(url: str, key: str) -> bool:
    client = redis.asyncio.from_url(url)
    try:
        return bool(await client.exists(key))
    finally:
        await client.aclose()


async def _notifier_smtp(system: AuditedSystem, findings: Findings) -> None:
    stack = system.stack
    variable = "NOTIFIER_SMTP_URL"
    problems = only(variable, await swapped(system, "notifier", {variable: system.spare_smtp.url}))
    placed = await place_order(stack.gateway_url, await stack.token("audit-iv-notifier"))
    order_id = str(placed.body.get("id"))
    await wait_notified(system.spare_orders_database_url, [order_id])
    to_new, to_old = (
        sum(1 for email in sink.received() if email["X-Dozen-Order-Id"] == order_id)
        for sink in (system.spare_smtp, stack.mailbox)
    )
    if (to_new, to_old) != (1, 0):
        problems.append(f"order {order_id}: {to_new} emails through the new mail server, {to_old} through the old")
    findings.judge(
        "IV",
        "notifier",
        problems,
        f"{variable} pointed at a second mail server (only that variable changed): order {order_id}'s email went "
        "there, none through the first",
    )
