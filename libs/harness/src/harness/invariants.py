"""The business invariants after a fault: every acknowledged order kept and notified once."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, replace

from harness.stack import Stack
from harness.steady import Load
from shared.testing import eventually, fetch

RECOVERY_TIMEOUT_SECONDS = 90
# Every scenario's outcome, in the order run: printed as a table after the run (conftest).
OUTCOMES: list[Outcome] = []


@dataclass(frozen=True)
class Outcome:
    scenario: str
    accepted: int
    refused: int
    lost: int
    duplicated: int
    # The one accepted at-least-once edge: killed after the SMTP server took the email,
    # before the notification row committed. Same Message-ID; reported, not a failure.
    emailed_twice: int
    # From the end of the fault (or of the load, for faults without one) to every kept order notified.
    recovered_seconds: float
    note: str = ""


async def _stages(stack: Stack, kept: list[str]) -> dict[str, int]:
    """How far the kept orders got, stage by stage: which process a stuck pipeline stopped in."""
    orders = await fetch(
        stack.orders_database_url,
        """
        SELECT count(*) FILTER (WHERE o.status = 'notified') AS notified,
               count(*) FILTER (WHERE x.published_at IS NULL) AS unpublished
        FROM orders o JOIN outbox x ON x.aggregate_id = o.id
        WHERE o.id = ANY($1::uuid[])
        """,
        kept,
    )
    recorded = await fetch(
        stack.notifier_database_url,
        "SELECT count(DISTINCT order_id) AS n FROM notifications WHERE order_id = ANY($1::uuid[])",
        kept,
    )
    emailed = {email["X-Dozen-Order-Id"] for email in stack.mailbox.received()}
    return {
        "kept": len(kept),
        "outbox unpublished (relay)": int(orders[0]["unpublished"]),
        "emailed (notifier)": len(emailed.intersection(kept)),
        "recorded (notifier)": int(recorded[0]["n"]),
        "notified (orders worker)": int(orders[0]["notified"]),
    }


def record(outcome: Outcome, note: str = "") -> Outcome:
    """Put ``outcome`` in the run's table, with what else the scenario measured."""
    noted = replace(outcome, note=note)
    OUTCOMES.append(noted)
    return noted


async def settle(stack: Stack, load: Load, scenario: str) -> Outcome:
    """Wait until every kept order is notified; count what was lost or done twice."""
    acknowledged = load.acknowledged
    started = load.fault_ended_at or time.monotonic()
    kept = [
        str(row["id"])
        for row in await fetch(
            stack.orders_database_url, "SELECT id FROM orders WHERE id = ANY($1::uuid[])", acknowledged
        )
    ]

    async def all_notified() -> bool | None:
        rows = await fetch(
            stack.orders_database_url,
            "SELECT count(*) AS n FROM orders WHERE id = ANY($1::uuid[]) AND status = 'notified'",
            kept,
        )
        return True if int(rows[0]["n"]) == len(kept) else None

    try:
        await eventually(
            all_notified,
            timeout_seconds=RECOVERY_TIMEOUT_SECONDS,
            interval_seconds=0.25,
            description=f"{scenario} drained",
        )
    except AssertionError as stuck:
        complaints = {
            name: [record for record in process.records if record.get("level") in {"warning", "error", "critical"}][-5:]
            for name, process in stack.processes.items()
        }
        raise AssertionError(
            f"{stuck}; where the kept orders stand: {await _stages(stack, kept)}; "
            f"each process's last warnings: {complaints}"
        ) from None
    recovered = time.monotonic() - started
    notifications = Counter(
        str(row["order_id"]) for row in await fetch(stack.notifier_database_url, "SELECT order_id FROM notifications")
    )
    sent = await fetch(
        stack.orders_database_url, "SELECT count(*) AS n FROM inbox WHERE event_type = 'dozen.notification.sent.v1'"
    )
    emails = Counter(email["X-Dozen-Order-Id"] for email in stack.mailbox.received())
    return Outcome(
        scenario=scenario,
        accepted=len(acknowledged),
        refused=sum(load.refused.values()),
        lost=len(acknowledged) - len(kept),
        duplicated=sum(count - 1 for count in notifications.values()) + abs(int(sent[0]["n"]) - len(notifications)),
        emailed_twice=sum(1 for count in emails.values() if count > 1),
        recovered_seconds=recovered,
    )
