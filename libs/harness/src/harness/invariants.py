"""The checker: after a fault, what exists is reconciled with what the client asked for.

Jepsen's way: the client's history (every idempotency key it used, and what it was told)
against the system's final state, once the system has settled. The invariants:

- every acknowledged order exists (else *lost*);
- at most one order per (customer, key), and each order notified, emailed and recorded once
  (else *duplicated*): the duplicates a customer would see, not ones the inbox absorbs;
- every order of the load's customers was asked for under one of the client's keys (else
  *unexpected*);
- every order that exists, acknowledged or not (a timeout, a reset: an unknown outcome the
  client could not tell), reaches notified (else the settle fails, saying where orders stand);
- emails sent twice at most as many as the scenario allows: the one accepted edge, a notifier
  dying (or its link reset) after the SMTP server took an email and before the commit.
"""

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
    # Tried again under the same key after an answer that did not say (timeout, reset, 502).
    retried: int
    lost: int
    duplicated: int
    unexpected: int
    emailed_twice: int
    # How many emails sent twice the scenario's faults may cause (the accepted edge).
    may_email_twice: int
    # From the end of the fault (or of the load, for faults without one) to every order notified.
    recovered_seconds: float
    # When the last order passed each stage, from the same start: which stage the recovery waited on.
    stages: str = ""
    note: str = ""

    @property
    def violations(self) -> list[str]:
        """The invariants this outcome breaks, in words; none for a sound run."""
        found = [f"{count} {what}" for what, count in (("lost", self.lost), ("duplicated", self.duplicated)) if count]
        if self.unexpected:
            found.append(f"{self.unexpected} orders nobody placed")
        if self.emailed_twice > self.may_email_twice:
            found.append(f"{self.emailed_twice} emails sent twice, {self.may_email_twice} allowed")
        return found


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


async def _last_through_each_stage(stack: Stack, ids: list[str], since_wall: float) -> str:
    """Seconds from ``since_wall`` to the last of ``ids`` placed, published, emailed and notified."""
    orders = await fetch(
        stack.orders_database_url,
        "SELECT extract(epoch FROM max(created_at)) AS placed, extract(epoch FROM max(published_at)) AS published,"
        " extract(epoch FROM max(notified_at)) AS notified FROM orders WHERE id = ANY($1::uuid[])",
        ids,
    )
    emailed = await fetch(
        stack.notifier_database_url,
        "SELECT extract(epoch FROM max(sent_at)) AS emailed FROM notifications WHERE order_id = ANY($1::uuid[])",
        ids,
    )
    last = {**dict(orders[0]), **dict(emailed[0])}
    return ", ".join(
        # + 0.0: a moment before the start rounds to 0.0, not to -0.0.
        f"{stage} {round(float(last[stage]) - since_wall, 1) + 0.0:+.1f} s"
        for stage in ("placed", "published", "emailed", "notified")
        if last[stage] is not None
    )


def record(outcome: Outcome, note: str = "") -> Outcome:
    """Put ``outcome`` in the run's table, with what else the scenario measured."""
    noted = replace(outcome, note=note)
    OUTCOMES.append(noted)
    return noted


async def settle(stack: Stack, load: Load, scenario: str, *, may_email_twice: int = 0) -> Outcome:
    """Wait until every order of the load's customers is notified; reconcile them with the
    client's history."""
    acknowledged = load.acknowledged
    started = load.fault_ended_at or time.monotonic()
    started_wall = load.fault_ended_wall or time.time()

    async def placed() -> list[dict[str, str]]:
        rows = await fetch(
            stack.orders_database_url,
            "SELECT id::text, customer_id, idempotency_key, status FROM orders WHERE customer_id = ANY($1::text[])",
            load.customers,
        )
        return [dict(row) for row in rows]

    async def all_notified() -> list[dict[str, str]] | None:
        orders = await placed()
        return orders if all(order["status"] == "notified" for order in orders) else None

    try:
        orders = await eventually(
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
        kept = [order["id"] for order in await placed()]
        raise AssertionError(
            f"{stuck}; where the orders stand: {await _stages(stack, kept)}; each process's last warnings: {complaints}"
        ) from None
    recovered = time.monotonic() - started
    ids = [order["id"] for order in orders]
    per_key = Counter((order["customer_id"], order["idempotency_key"]) for order in orders)
    notifications = Counter(
        str(row["order_id"])
        for row in await fetch(
            stack.notifier_database_url, "SELECT order_id FROM notifications WHERE order_id = ANY($1::uuid[])", ids
        )
    )
    emails = Counter(email["X-Dozen-Order-Id"] for email in stack.mailbox.received())
    return Outcome(
        scenario=scenario,
        accepted=len(acknowledged),
        refused=sum(load.refused.values()),
        retried=load.retried,
        lost=len(set(acknowledged) - set(ids)),
        duplicated=sum(count - 1 for count in per_key.values()) + sum(count - 1 for count in notifications.values()),
        unexpected=sum(1 for customer, key in per_key if load.issued.get(key) != customer),
        emailed_twice=sum(emails[order_id] - 1 for order_id in ids if emails[order_id] > 1),
        may_email_twice=may_email_twice,
        recovered_seconds=recovered,
        stages=await _last_through_each_stage(stack, ids, started_wall),
    )
