"""XII: admin tasks are one-off processes of the same release with the same config. Each
runs from the install its service's long-running processes run from, with the environment
of one of them, does its job on the live system, and exits 0: the migrations (a second run
applies nothing), a token for a customer, a dead letter listed and replayed once its cause
is fixed, and a delivery lost downstream re-driven from the outbox."""

from __future__ import annotations

import signal
from typing import Any

import aiohttp

from audit.observe import ObservedProcess, changed_variables
from audit.runtime.findings import Findings
from audit.runtime.probes import existing_queue, place_order, ready_messages, wait_notified
from audit.runtime.system import AuditedSystem
from harness.probes import HTTP_TIMEOUT
from shared.messaging.topology import dead_letter_names
from shared.testing import eventually, fetch, wait_until_ready

PARKED_CUSTOMER = "audit-xii-parked"


def same_release_and_config(one_off: ObservedProcess, long_running: ObservedProcess) -> list[str]:
    """XII: the one-off ran the same executable of the same install, with the same environment."""
    problems = []
    if one_off.executable != long_running.executable:
        problems.append(f"ran {one_off.executable}, the processes run {long_running.executable}")
    differing = changed_variables(long_running.env, one_off.env)
    if differing:
        problems.append(f"configured differently from {long_running.name}: {differing}")
    return problems


async def check_admin_processes(system: AuditedSystem, findings: Findings) -> None:
    for service, like, arguments in (("orders", "orders-web", ["migrate"]), ("notifier", "notifier", ["migrate"])):
        migrate = await _one_off(system, findings, service, like, arguments)
        applied = [record.get("applied") for record in migrate.records if record.get("message") == "migrations done"]
        findings.judge(
            "XII",
            service,
            [] if applied == [[]] else [f"{service} migrate, run again, logged {applied} instead of applying nothing"],
            f"{service} migrate run again as a one-off: nothing to apply",
        )
    await _issue_token(system, findings)
    await _dead_letter_replayed(system, findings)
    await _lost_delivery_redriven(system, findings)


async def _one_off(
    system: AuditedSystem, findings: Findings, service: str, like: str, arguments: list[str]
) -> ObservedProcess:
    """``arguments`` run by stack.admin with ``like``'s environment; judged for release, config and exit."""
    process = await system.stack.admin(like, *arguments)
    if not isinstance(process, ObservedProcess):
        raise TypeError("the one-off was not observed")
    command = f"{service} {' '.join(arguments)}"
    problems = same_release_and_config(process, system.process(like))
    if process.returncode != 0:
        problems.append(f"exited {process.returncode}: {process.output()[-300:]}")
    findings.judge(
        "XII",
        service,
        (f"{command}: {problem}" for problem in problems),
        f"{command}: a one-off of {process.executable}, with {like}'s environment, exit 0",
    )
    return process


async def _issue_token(system: AuditedSystem, findings: Findings) -> None:
    issue = await _one_off(system, findings, "gateway", "gateway", ["issue-token", "--subject", "audit-xii"])
    token = issue.lines[-1] if issue.lines else ""
    async with (
        aiohttp.ClientSession(timeout=HTTP_TIMEOUT) as http,
        http.get(f"{system.stack.gateway_url}/api/v1/orders", headers={"Authorization": f"Bearer {token}"}) as answer,
    ):
        status = answer.status
    findings.judge(
        "XII",
        "gateway",
        [] if status == 200 else [f"the running gateway answered {status} to the token issue-token printed"],
        "the token gateway issue-token printed is accepted by the running gateway (200)",
    )


async def _dead_letter_replayed(system: AuditedSystem, findings: Findings) -> None:
    stack = system.stack
    queue = system.private_name("notifier.order-created")
    stack.mailbox.refuse_mailbox(PARKED_CUSTOMER)
    try:
        placed = await place_order(stack.gateway_url, await stack.token(PARKED_CUSTOMER))
        await eventually(lambda: _depth(system.amqp_url, dead_letter_names(queue)[1]), description="dead-lettered")
        listing = await _one_off(system, findings, "notifier", "notifier", ["dlq", "list"])
    finally:
        stack.mailbox.refuse_mailbox(PARKED_CUSTOMER, None)
    listed = [record["dead_letter"] for record in listing.records if isinstance(record.get("dead_letter"), dict)]
    await _one_off(system, findings, "notifier", "notifier", ["dlq", "replay"])
    await wait_notified(stack.orders_database_url, [str(placed.body["id"])])
    emails = [email for email in stack.mailbox.received() if email["X-Dozen-Order-Id"] == placed.body["id"]]
    findings.judge(
        "XII",
        "notifier",
        [] if len(listed) == 1 and len(emails) == 1 else [f"dlq list showed {len(listed)}, emails sent {len(emails)}"],
        f"an order whose mailbox refused (550) was parked; notifier dlq list showed it "
        f"({_reason(listed)}); once the mailbox accepted, notifier dlq replay delivered it: notified, one email",
    )


def _reason(listed: list[dict[str, Any]]) -> str:
    reasons = [str(letter.get("reason", "")) for letter in listed]
    return reasons[0][:80] if reasons else "nothing listed"


async def _lost_delivery_redriven(system: AuditedSystem, findings: Findings) -> None:
    stack = system.stack
    notifier = system.process("notifier")
    notifier.send_signal(signal.SIGTERM)
    await notifier.wait(timeout_seconds=30)
    placed = await place_order(stack.gateway_url, await stack.token("audit-xii-lost"))
    order_id = str(placed.body["id"])
    queue = system.private_name("notifier.order-created")
    await eventually(lambda: _depth(system.amqp_url, queue), description="the event waiting in the notifier's queue")
    purged = await _purge(system.amqp_url, queue)
    successor = notifier.twin()
    stack.processes["notifier"] = successor
    await successor.start()
    await wait_until_ready(stack.ports["notifier"], what="notifier", process=successor)
    [before] = await fetch(stack.orders_database_url, "SELECT status FROM orders WHERE id = $1::uuid", order_id)
    await _one_off(system, findings, "orders", "orders-relay", ["outbox", "redrive", "--order", order_id])
    await wait_notified(stack.orders_database_url, [order_id])
    findings.judge(
        "XII",
        "orders",
        []
        if purged == 1 and before["status"] == "accepted"
        else [f"purged {purged}, the order was {before['status']}"],
        f"order {order_id}'s delivery purged from the notifier's queue (it stayed {before['status']}); "
        "orders outbox redrive published it again: notified",
    )


async def _depth(amqp_url: str, queue: str) -> int | None:
    return await ready_messages(amqp_url, queue) or None


async def _purge(amqp_url: str, queue: str) -> int:
    async with existing_queue(amqp_url, queue) as declared:
        return int((await declared.purge()).message_count or 0)
