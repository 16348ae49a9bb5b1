"""The faults a visitor can switch on while watching (`make fault`, the board's panel), each
defined once: what switching it on and off does to the running system.

The database fault slows every write where it happens, in PostgreSQL itself. The SMTP faults
work the development mail server (shared.testing.smtp.SmtpSink, the same
sink and the same calls the fault suite makes); the pauses stop a process type's processes
with SIGSTOP and wake them with SIGCONT, as a host that freezes them would; the overload
burst is the fault suite's open-loop generator (harness.load) at several times what this
machine sustains. None of this exists in an image: the harness is development tooling,
never deployed.
"""

from __future__ import annotations

import asyncio
import signal
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import psutil

from harness.api import ORDER_BODY, ORDERS_PATH
from harness.load import Answer, Run, open_loop
from shared.testing.smtp import SmtpSink

SMTP_BUSY = "451 4.3.0 mailbox busy, try again later"
SMTP_NO_SUCH_MAILBOX = "550 5.1.1 mailbox unavailable"
# A demo customer whose orders the poison fault makes unprocessable.
POISONED_CUSTOMER = "carol"
# Added to every write statement on the pipeline's tables while PostgreSQL is slow: a slow
# disk's fsync, or a lock held elsewhere, as the processes see it.
POSTGRES_SLOW_SECONDS = 0.05
# The tables each process type writes as an order goes through (the orders and notifier databases).
_WRITTEN_TABLES = {"orders": ("orders", "outbox", "inbox"), "notifier": ("notifications",)}
# The burst: orders offered a second (a few times what two cores sustain), for at most this
# long (it stops by itself), from this many customers (their rate limits are not the point).
BURST_RATE = 600
BURST_SECONDS = 15
BURST_CUSTOMERS = 50
BURST_CLIENT_TIMEOUT_SECONDS = 10
# Slower than a healthy server by far, well inside the notifier's SMTP timeout.
SMTP_SLOW_SECONDS = 1.0


@dataclass(frozen=True)
class Targets:
    """What faults act on: the mail server, and the processes of one run (the descendants of
    ``root_pid``: honcho's under `make dev`, the test's under a test stack)."""

    mailbox: SmtpSink
    root_pid: int
    # The gateway a burst goes to, and how its customers get their tokens (the gateway's
    # own one-off, `gateway issue-token`).
    gateway_url: str = ""
    issue_tokens: Callable[[Sequence[str]], Awaitable[list[str]]] | None = None
    # The databases the pipeline writes, by service (orders, notifier).
    database_urls: dict[str, str] = field(default_factory=dict)
    # What a fault leaves running while it is on (the burst's task).
    running: dict[str, Any] = field(default_factory=dict)

    def signal(self, service: str, command: str, signal_number: signal.Signals) -> int:
        """Send the signal to each process of the type; how many there were."""
        sent = 0
        for process in psutil.Process(self.root_pid).children(recursive=True):
            try:
                argv = process.cmdline()
            except psutil.Error:
                continue  # gone meanwhile
            if [Path(word).name for word in argv[-2:]] == [service, command]:
                process.send_signal(signal_number)
                sent += 1
        return sent


@dataclass(frozen=True)
class Fault:
    name: str
    description: str
    switch_on: Callable[[Targets], Awaitable[None]]
    # What it says when switched off, beside the verdict (None: nothing).
    switch_off: Callable[[Targets], Awaitable[str | None]]
    # The customer whose orders this fault sends to the dead-letter queue on purpose: parked
    # (`notifier dlq replay` brings them back), not lost.
    parks_orders_of: str | None = None


async def _refusing(targets: Targets) -> None:
    targets.mailbox.refuse_all(SMTP_BUSY)


async def _accepting(targets: Targets) -> str | None:
    targets.mailbox.refuse_all(None)
    return None


async def _slow(targets: Targets) -> None:
    targets.mailbox.delay_seconds = SMTP_SLOW_SECONDS


async def _fast(targets: Targets) -> str | None:
    targets.mailbox.delay_seconds = 0.0
    return None


async def _poisoned(targets: Targets) -> None:
    targets.mailbox.refuse_mailbox(POISONED_CUSTOMER, SMTP_NO_SUCH_MAILBOX)


async def _cured(targets: Targets) -> str | None:
    targets.mailbox.refuse_mailbox(POISONED_CUSTOMER, None)
    return None


async def _slow_writes(targets: Targets) -> None:
    if not targets.database_urls:
        raise LookupError("no database to slow down")
    await _each_written_table(
        targets,
        f"""CREATE OR REPLACE FUNCTION dozen_fault_slow() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN PERFORM pg_sleep({POSTGRES_SLOW_SECONDS}); RETURN NULL; END; $$""",
        "CREATE OR REPLACE TRIGGER dozen_fault_slow AFTER INSERT OR UPDATE ON {table}"
        " FOR EACH STATEMENT EXECUTE FUNCTION dozen_fault_slow()",
    )


async def _fast_writes(targets: Targets) -> str | None:
    # Idempotent: after a switchboard that died while it was on, this still clears it.
    await _each_written_table(
        targets,
        None,
        "DROP TRIGGER IF EXISTS dozen_fault_slow ON {table}",
        "DROP FUNCTION IF EXISTS dozen_fault_slow()",
    )
    return None


async def _each_written_table(targets: Targets, before: str | None, each: str, after: str | None = None) -> None:
    for service, url in targets.database_urls.items():
        connection = await asyncpg.connect(url)
        try:
            async with connection.transaction():
                if before:
                    await connection.execute(before)
                for table in _WRITTEN_TABLES[service]:
                    await connection.execute(each.format(table=table))
                if after:
                    await connection.execute(after)
        finally:
            await connection.close()


def _pause(
    service: str, command: str
) -> tuple[Callable[[Targets], Awaitable[None]], Callable[[Targets], Awaitable[str | None]]]:
    async def pause(targets: Targets) -> None:
        if not targets.signal(service, command, signal.SIGSTOP):
            raise LookupError(f"no `{service} {command}` process is running here")

    async def resume(targets: Targets) -> str | None:
        targets.signal(service, command, signal.SIGCONT)
        return None

    return pause, resume


async def _burst(targets: Targets) -> None:
    if targets.issue_tokens is None or not targets.gateway_url:
        raise LookupError("no gateway to send a burst to")
    tokens = await targets.issue_tokens([f"burst-{number}" for number in range(BURST_CUSTOMERS)])
    targets.running["burst"] = asyncio.create_task(_offer(targets.gateway_url, tokens), name="overload-burst")


async def _offer(gateway_url: str, tokens: list[str]) -> Run:
    timeout = aiohttp.ClientTimeout(total=BURST_CLIENT_TIMEOUT_SECONDS)
    async with aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=0)) as http:

        async def place(index: int) -> Answer:
            headers = {"Authorization": f"Bearer {tokens[index % len(tokens)]}", "Idempotency-Key": str(uuid.uuid4())}
            async with http.post(f"{gateway_url}{ORDERS_PATH}", json=ORDER_BODY, headers=headers) as answer:
                return Answer(answer.status, {k.lower(): v for k, v in answer.headers.items()}, await answer.read())

        return await open_loop(place, rate=BURST_RATE, seconds=BURST_SECONDS)


async def _calm(targets: Targets) -> str | None:
    burst: asyncio.Task[Run] | None = targets.running.pop("burst", None)
    if burst is None:
        return None
    # Bounded already (BURST_SECONDS); waited out, so every answer is counted.
    run = await burst
    outcomes = Counter(attempt.outcome for attempt in run.attempts)
    refused = [attempt for attempt in run.attempts if attempt.status in {429, 503}]
    without_retry_after = sum(1 for attempt in refused if attempt.retry_after is None)
    return (
        f"burst: {len(run.attempts)} offered at {BURST_RATE}/s; "
        + ", ".join(f"{count} {outcome}" for outcome, count in sorted(outcomes.items()))
        + f"; {without_retry_after} refusals without Retry-After"
    )


FAULTS = {
    fault.name: fault
    for fault in (
        Fault("smtp-refusing", f"The mail server answers every email with {SMTP_BUSY[:3]}.", _refusing, _accepting),
        Fault("smtp-slow", f"The mail server takes {SMTP_SLOW_SECONDS:g} s to accept each email.", _slow, _fast),
        Fault("notifier-paused", "Every notifier process is frozen (SIGSTOP).", *_pause("notifier", "worker")),
        Fault("relay-paused", "Every orders relay process is frozen (SIGSTOP).", *_pause("orders", "relay")),
        Fault(
            "postgres-slow",
            f"Every write to the pipeline's tables takes {POSTGRES_SLOW_SECONDS * 1000:.0f} ms longer, in PostgreSQL"
            " itself (a statement trigger sleeps, as a slow disk would stall it).",
            _slow_writes,
            _fast_writes,
        ),
        Fault(
            "overload-burst",
            f"{BURST_RATE} orders a second for up to {BURST_SECONDS} s: past capacity, fast 503s with Retry-After.",
            _burst,
            _calm,
        ),
        Fault(
            "poison-messages",
            f"The mail server refuses {POISONED_CUSTOMER}'s mailbox for good ({SMTP_NO_SUCH_MAILBOX[:3]}): her orders"
            " are dead-lettered at once and hold up nobody else's.",
            _poisoned,
            _cured,
            parks_orders_of=POISONED_CUSTOMER,
        ),
    )
}
