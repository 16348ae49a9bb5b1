"""VI: processes keep nothing worth keeping. Under a steady stream of orders each process
type is killed with SIGKILL (no goodbye) and started again; every order the gateway
acknowledged is kept and notified once. An order placed before the kills is read back
and its Idempotency-Key replayed after every process was replaced: all of it lived in
PostgreSQL, RabbitMQ and Redis, none in a process."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable

from audit.deploys import SERVICES
from audit.runtime.findings import Findings
from audit.runtime.probes import place_order
from audit.runtime.system import AuditedSystem
from harness.invariants import Outcome, settle
from harness.procfile import of_service
from harness.steady import steady_load

ORDERS_PER_SECOND = 25
# Acknowledged orders between two kills: each kill lands mid-stream.
BETWEEN_KILLS = 15
KILLED = {service: of_service(service) for service in SERVICES}


def nothing_lost_or_doubled(outcome: Outcome) -> list[str]:
    problems = []
    if outcome.lost:
        problems.append(f"{outcome.lost} of {outcome.accepted} acknowledged orders lost")
    if outcome.duplicated:
        problems.append(f"{outcome.duplicated} orders handled twice")
    return problems


async def check_statelessness(system: AuditedSystem, findings: Findings) -> None:
    order_id, problems = await replay_after(system, lambda: _kill_every_process_type(system, findings))
    for service in ("gateway", "orders"):
        findings.judge(
            "VI",
            service,
            problems,
            f"order {order_id}, placed before every process was killed and replaced, replayed by its "
            "Idempotency-Key afterwards: the same order, Idempotent-Replayed: true",
        )


async def replay_after(system: AuditedSystem, replace: Callable[[], Awaitable[None]]) -> tuple[str, list[str]]:
    """Place an order, ``replace`` processes, then replay the order's Idempotency-Key: what
    the system remembers of it must not have lived in a process."""
    stack = system.stack
    token = await stack.token("audit-vi")
    key = str(uuid.uuid4())
    before = await place_order(stack.gateway_url, token, key)
    await replace()
    replayed = await place_order(stack.gateway_url, token, key)
    problems = []
    marker = replayed.headers.get("Idempotent-Replayed")
    if replayed.status != 201 or marker != "true":
        problems.append(f"the replay answered {replayed.status}, Idempotent-Replayed: {marker}")
    if replayed.body.get("id") != before.body.get("id"):
        problems.append(f"the replay names order {replayed.body.get('id')}, not {before.body.get('id')}")
    return str(before.body.get("id")), problems


async def _kill_every_process_type(system: AuditedSystem, findings: Findings) -> None:
    stack = system.stack
    for service, processes in KILLED.items():
        async with steady_load(stack, per_second=ORDERS_PER_SECOND) as load:
            for name in processes:
                await load.reached(len(load.acknowledged) + BETWEEN_KILLS, within=30)
                await stack.kill_and_restart(name)
            load.fault_over()
            await load.reached(len(load.acknowledged) + BETWEEN_KILLS, within=30)
        outcome = await settle(stack, load, f"kill -9 {', '.join(processes)}")
        findings.judge(
            "VI",
            service,
            nothing_lost_or_doubled(outcome),
            f"kill -9 and restart of {', '.join(processes)} under {ORDERS_PER_SECOND} orders/s: "
            f"{outcome.accepted} acknowledged, 0 lost, 0 handled twice, all notified {outcome.recovered_seconds:.1f} s "
            f"after the last restart ({outcome.refused} refused while down, never acknowledged"
            + (f"; {outcome.emailed_twice} emailed twice, the documented SMTP edge" if outcome.emailed_twice else "")
            + ")",
        )
