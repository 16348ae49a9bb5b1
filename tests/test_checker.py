"""The fault suite's checker, shown able to fail: each guarantee broken on purpose, after a
clean run, is reported by the invariant that guards it (harness.invariants)."""

from __future__ import annotations

import smtplib
import uuid
from collections.abc import Awaitable, Callable

from harness.invariants import settle
from harness.stack import Stack
from harness.steady import Load, steady_load
from shared.testing import execute, fetch

ORDERS = 20


async def lose_one(stack: Stack, load: Load) -> None:
    await fetch(stack.orders_database_url, "DELETE FROM orders WHERE id = $1::uuid", load.acknowledged[0])


async def place_one_twice(stack: Stack, load: Load) -> None:
    """The idempotency key's constraint gone, and a second order under an acknowledged key."""
    await execute(stack.orders_database_url, "ALTER TABLE orders DROP CONSTRAINT orders_idempotency")
    await fetch(
        stack.orders_database_url,
        """INSERT INTO orders (id, customer_id, currency, items, total_cents, status, idempotency_key,
                               request_hash, notified_at)
           SELECT $2, customer_id, currency, items, total_cents, status, idempotency_key, request_hash, notified_at
           FROM orders WHERE id = $1::uuid""",
        load.acknowledged[1],
        uuid.uuid4(),
    )


async def notify_one_twice(stack: Stack, load: Load) -> None:
    """A second notification recorded for one order, under another event id."""
    await fetch(
        stack.notifier_database_url,
        """INSERT INTO notifications (id, order_created_event_id, order_id, customer_id, channel, recipient,
                                      message_id, sent_at)
           SELECT $2, $3, order_id, customer_id, channel, recipient, message_id, sent_at
           FROM notifications WHERE order_id = $1::uuid""",
        load.acknowledged[2],
        uuid.uuid4(),
        uuid.uuid4(),
    )


async def place_one_nobody_asked_for(stack: Stack, load: Load) -> None:
    await fetch(
        stack.orders_database_url,
        """INSERT INTO orders (id, customer_id, currency, items, total_cents, status, idempotency_key,
                               request_hash, notified_at)
           VALUES ($1, $2, 'EUR', '[]', 0, 'notified', 'never-issued', '', clock_timestamp())""",
        uuid.uuid4(),
        load.customers[0],
    )


async def email_one_twice(stack: Stack, load: Load) -> None:
    [original] = [email for email in stack.mailbox.received() if email["X-Dozen-Order-Id"] == load.acknowledged[3]]
    with smtplib.SMTP("127.0.0.1", stack.mailbox.port) as smtp:
        smtp.send_message(original)


# Each break, on an order of its own, and what the checker says once it is added to the others.
BREAKS: list[tuple[Callable[[Stack, Load], Awaitable[None]], list[str]]] = [
    (lose_one, ["1 lost"]),
    (place_one_twice, ["1 lost", "1 duplicated"]),
    (notify_one_twice, ["1 lost", "2 duplicated"]),
    (place_one_nobody_asked_for, ["1 lost", "2 duplicated", "1 orders nobody placed"]),
    (email_one_twice, ["1 lost", "2 duplicated", "1 orders nobody placed", "1 emails sent twice, 0 allowed"]),
]


async def test_each_guarantee_broken_on_purpose_is_reported_by_its_invariant(stack: Stack) -> None:
    async with steady_load(stack, per_second=20) as load:
        await load.reached(ORDERS)
    clean = await settle(stack, load, "clean")
    assert clean.violations == [], clean

    for tamper, violations in BREAKS:
        await tamper(stack, load)

        broken = await settle(stack, load, tamper.__name__)
        assert broken.violations == violations, (tamper.__name__, broken)
