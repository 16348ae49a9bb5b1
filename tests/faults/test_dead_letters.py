"""What the notifier cannot deliver is parked with its reason and blocks nothing; after the
fix, ``notifier dlq replay`` (a one-off of the same release, same config) delivers it once."""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator
from typing import Any

import aio_pika
import aiohttp
import pytest
from aio_pika.abc import AbstractChannel

from harness.api import ORDER_BODY, ORDERS_PATH
from harness.faults import FAULTS, POISONED_CUSTOMER, Targets
from harness.invariants import record, settle
from harness.stack import Stack
from harness.steady import steady_load
from shared.events import OrderCreatedV1
from shared.messaging import dead_letter_names
from shared.testing import eventually, fetch

ORDERS_PER_SECOND = 50


@pytest.fixture
async def channel(amqp_url: str) -> AsyncIterator[AbstractChannel]:
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        yield await connection.channel()


async def dead_lettered(channel: AbstractChannel, stack: Stack) -> int:
    """How many messages the notifier's dead-letter queue holds now."""
    queue = dead_letter_names(stack.processes["notifier"].env["NOTIFIER_QUEUE"])[1]
    declared = await channel.declare_queue(queue, passive=True)
    assert declared.declaration_result.message_count is not None
    return declared.declaration_result.message_count


async def dlq_list(stack: Stack) -> list[dict[str, Any]]:
    listing = await stack.admin("notifier", "dlq", "list", "--limit", "10000")
    assert listing.returncode == 0, listing.output()
    return [record["dead_letter"] for record in listing.records if "dead_letter" in record]


async def dlq_replay(stack: Stack) -> int:
    replay = await stack.admin("notifier", "dlq", "replay")
    assert replay.returncode == 0, replay.output()
    [done] = [record for record in replay.records if record.get("message") == "replay done"]
    return int(done["replayed"])


async def order_status(stack: Stack, order_id: str) -> str:
    [row] = await fetch(stack.orders_database_url, "SELECT status FROM orders WHERE id = $1::uuid", order_id)
    return str(row["status"])


async def test_poison_is_dead_lettered_with_its_reason_blocks_nothing_and_replays_after_the_fix(
    stack: Stack, channel: AbstractChannel
) -> None:
    # The very fault `make fault NAME=poison-messages` switches (harness.faults).
    poison, targets = FAULTS["poison-messages"], Targets(stack.mailbox, root_pid=os.getpid())
    await poison.switch_on(targets)
    token = await stack.token(POISONED_CUSTOMER)
    async with steady_load(stack, per_second=ORDERS_PER_SECOND) as load:
        await load.reached(100)
        # Poison of both kinds, mid-stream: a message no version of the code can read, and
        # an order whose email the mail server refuses for good (fixable: the mailbox).
        exchange = await channel.get_exchange(stack.processes["notifier"].env["NOTIFIER_ORDERS_EXCHANGE"])
        await exchange.publish(
            aio_pika.Message(b"{not json", message_id="garbage-1", content_type="application/json"),
            routing_key=OrderCreatedV1.event_type,
        )
        async with (
            aiohttp.ClientSession() as http,
            http.post(
                f"{stack.gateway_url}{ORDERS_PATH}",
                json=ORDER_BODY,
                headers={"Authorization": f"Bearer {token}", "Idempotency-Key": "poisoned-1"},
            ) as answer,
        ):
            assert answer.status == 201
            poisoned_order = (await answer.json())["id"]
        await load.reached(len(load.acknowledged) + 100)

    # The rest are unaffected: every other order notified once, nothing lost.
    unaffected = await settle(stack, load, "poison messages")
    await eventually(lambda: _equals(dead_lettered(channel, stack), 2), description="both poison messages parked")
    parked = {entry["message_id"]: entry for entry in await dlq_list(stack)}
    assert parked["garbage-1"]["reason"].startswith("unprocessable: ")
    [refused] = [entry for message_id, entry in parked.items() if message_id != "garbage-1"]
    assert refused["reason"] == "unprocessable: SMTP refused every recipient: 5.1.1 mailbox unavailable"
    assert refused["attempts"] == 1  # a permanent refusal is not retried
    assert await order_status(stack, poisoned_order) == "accepted"

    # The fix, then the re-drive: the order is notified; the unreadable one is parked again.
    await poison.switch_off(targets)
    started = time.monotonic()
    replayed = await dlq_replay(stack)
    await eventually(
        lambda: _equals(order_status(stack, poisoned_order), "notified"), description="poisoned order notified"
    )
    recovered = time.monotonic() - started
    await eventually(lambda: _equals(dead_lettered(channel, stack), 1), description="the garbage parked again")
    assert [entry["message_id"] for entry in await dlq_list(stack)] == ["garbage-1"]
    emails = [email for email in stack.mailbox.received() if email["X-Dozen-Order-Id"] == poisoned_order]
    outcome = record(
        unaffected,
        f"2 parked with reasons, the rest unaffected; after the fix, replayed {replayed}:"
        f" the order notified {recovered:.1f} s later, the unreadable one parked again",
    )
    assert not outcome.violations, outcome
    assert replayed == 2
    assert len(emails) == 1


async def test_smtp_slow_then_down_past_the_retry_limit_dead_letters_then_replay_loses_nothing(
    stack: Stack, channel: AbstractChannel
) -> None:
    async with steady_load(stack, per_second=ORDERS_PER_SECOND) as load:
        await load.reached(100)
        # Slow: 0.3 s per email, under the notifier's SMTP timeout; its 4 sessions then carry
        # ~13 emails/s of the 50 orders/s, so a backlog builds and is worked off later.
        stack.mailbox.delay_seconds = 0.3
        await load.reached(len(load.acknowledged) + 3 * ORDERS_PER_SECOND)
        stack.mailbox.delay_seconds = 0.0
        # Down for ~10 s: longer than a message's 5 attempts (backoff 0.5 s doubling,
        # ≤ 7.5 s in all), so the messages being tried when it went down are dead-lettered.
        stack.mailbox.stop()
        try:
            await load.reached(len(load.acknowledged) + 10 * ORDERS_PER_SECOND)
            await eventually(
                lambda: _at_least(dead_lettered(channel, stack), 1), timeout_seconds=20, description="dead letters"
            )
        finally:
            stack.mailbox.start()
        load.fault_over()
        await load.reached(len(load.acknowledged) + 100)

    # Every order is either notified or parked, with its reason.
    async def all_settled() -> int | None:
        rows = await fetch(
            stack.orders_database_url,
            "SELECT count(*) AS n FROM orders WHERE id = ANY($1::uuid[]) AND status = 'notified'",
            load.acknowledged,
        )
        parked = await dead_lettered(channel, stack)
        return parked if int(rows[0]["n"]) + parked == len(load.acknowledged) else None

    parked = await eventually(all_settled, timeout_seconds=90, description="notified or parked")
    reasons = {entry["reason"].split(", last: ")[0] for entry in await dlq_list(stack)}
    assert reasons == {"failed 5 times"}, reasons
    replayed = await dlq_replay(stack)
    outcome = record(
        await settle(stack, load, "SMTP slow (0.3 s/email ~3 s), then down ~10 s"),
        f"dead-lettered after 5 attempts: {parked}, replayed by `notifier dlq replay`: {replayed}",
    )
    assert replayed == parked
    assert await dead_lettered(channel, stack) == 0
    assert not outcome.violations, outcome


async def _equals(value: Any, expected: object) -> bool | None:
    return True if await value == expected else None


async def _at_least(value: Any, minimum: int) -> bool | None:
    return True if await value >= minimum else None
