"""VIII: each process type scales out by running more of it. A second gateway, relay and
notifier join the running ones; orders go through both gateways; every event crosses the
exchanges once (a tap counts them), every customer gets one email, and each instance did
its share of the work."""

from __future__ import annotations

import asyncio
import signal
from collections import Counter
from collections.abc import Mapping

from audit.runtime.arrival import check_arrivals
from audit.runtime.findings import Findings
from audit.runtime.probes import metric_sum, notifications_per_order, place_orders, tapped, wait_notified
from audit.runtime.system import AuditedSystem
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


def exactly_once(counts: Counter[str], expected: list[str], what: str) -> list[str]:
    """Each of ``expected`` seen once: never missing, never twice."""
    wrong = {key: counts.get(key, 0) for key in expected if counts.get(key, 0) != 1}
    if not wrong:
        return []
    sample = dict(list(wrong.items())[:3])
    return [f"{len(wrong)} of {len(expected)} orders not {what} exactly once (e.g. {sample})"]


def every_instance_worked(work: dict[str, float], what: str) -> list[str]:
    idle = [name for name, done in work.items() if done <= 0]
    return [f"{', '.join(idle)} {what} nothing: the work was not shared"] if idle else []


async def check_concurrency(
    system: AuditedSystem, findings: Findings, added_config: Mapping[str, Mapping[str, str]] | None = None
) -> None:
    """``added_config``: per process type, what the added instance is configured with besides
    what the first one has (nothing, as every deploy scales)."""
    stack = system.stack
    added = [await stack.start_instance(kind, (added_config or {}).get(kind)) for kind in WORK]
    await check_arrivals(system, findings, added)
    instances = {kind: [kind, extra] for kind, extra in zip(WORK, added, strict=True)}
    before = await _work_done(system, instances)
    tokens = await asyncio.gather(*(stack.token(f"audit-viii-{number}") for number in range(CUSTOMERS)))
    gateways = [f"http://127.0.0.1:{stack.ports[name]}" for name in instances["gateway"]]
    async with tapped(
        system.amqp_url, [system.private_name("orders.events"), system.private_name("notifier.events")]
    ) as tap:
        answers = await place_orders(gateways, tokens, ORDERS)
        order_ids = [str(answer.body["id"]) for answer in answers if answer.status == 201]
        refused = [answer.status for answer in answers if answer.status != 201]
        await wait_notified(stack.orders_database_url, order_ids)
        # The last NotificationSent may be a hair behind the worker's commit: wait for the tap too.
        await eventually(
            lambda: len(tap.subjects(NotificationSentV1.event_type)) >= len(order_ids),
            timeout_seconds=10,
            description="every NotificationSent on the tap",
        )
    after = await _work_done(system, instances)
    work = {name: after[name] - before[name] for name in after}
    emails = Counter(str(email["X-Dozen-Order-Id"]) for email in stack.mailbox.received())
    rows = await notifications_per_order(stack.notifier_database_url, order_ids)
    published, sent = tap.subjects(OrderCreatedV1.event_type), tap.subjects(NotificationSentV1.event_type)

    def share(kind: str) -> str:
        return " + ".join(f"{name} {work[name]:.0f}" for name in instances[kind])

    findings.judge(
        "VIII",
        "gateway",
        ([f"{len(refused)} orders refused: {Counter(refused)}"] if refused else [])
        + every_instance_worked({name: work[name] for name in instances["gateway"]}, "served"),
        f"two gateways took {len(order_ids)} orders at once ({share('gateway')} requests), none refused",
    )
    findings.judge(
        "VIII",
        "orders",
        exactly_once(published, order_ids, "published")
        + every_instance_worked({name: work[name] for name in instances["orders-relay"]}, "published"),
        f"two relays side by side: {len(order_ids)} OrderCreated on the exchange, each exactly once "
        f"({share('orders-relay')} published; FOR UPDATE SKIP LOCKED shares the outbox)",
    )
    findings.judge(
        "VIII",
        "notifier",
        exactly_once(emails, order_ids, "emailed")
        + exactly_once(rows, order_ids, "recorded")
        + exactly_once(sent, order_ids, "announced (NotificationSent)")
        + every_instance_worked({name: work[name] for name in instances["notifier"]}, "handled"),
        f"two notifiers on one queue: {len(order_ids)} orders, each emailed, recorded and announced exactly once "
        f"({share('notifier')} messages)",
    )
    for name in added:
        await _retire(system, name)


async def _work_done(system: AuditedSystem, instances: dict[str, list[str]]) -> dict[str, float]:
    done = {}
    for kind, names in instances.items():
        sample, labels = WORK[kind]
        for name in names:
            done[name] = await metric_sum(system.stack.ports[name], sample, **labels)
    return done


async def _retire(system: AuditedSystem, name: str) -> None:
    """SIGTERM an added instance; it must leave cleanly."""
    process = system.process(name)
    process.send_signal(signal.SIGTERM)
    code = await process.wait(timeout_seconds=30)
    del system.stack.processes[name]
    if code != 0:
        raise RuntimeError(f"{name} exited {code} on SIGTERM: {process.output()}")
