"""The outbox table: the relay claims rows due for publishing and marks them published, or
puts off (and in the end parks) those the broker refuses; an operator unparks rows and
re-drives the events of orders stuck waiting for their notification."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING
from uuid import UUID

from asyncpg import Record

from shared.db import Pool, PoolConnection

if TYPE_CHECKING:
    # Only its type: importing shared.messaging would cost the one-offs aio-pika's start-up.
    from shared.messaging import RetryPolicy

# What wakes the relays: the trigger of migration 0001 notifies it at every commit of new rows.
NOTIFY_CHANNEL = "orders_outbox"


@dataclass(frozen=True)
class OutboxRow:
    id: int
    event_id: UUID
    event_type: str
    aggregate_id: UUID
    payload: str
    traceparent: str | None
    tracestate: str | None


@dataclass(frozen=True)
class Backlog:
    rows: int
    oldest_age_seconds: float
    parked: int


# An outbox row the broker refused (unroutable, nacked), and why.
Refused = tuple[OutboxRow, str]


class Claim:
    """A batch of rows locked by this relay until the transaction ends."""

    def __init__(self, rows: list[OutboxRow], connection: PoolConnection) -> None:
        self.rows = rows
        self._connection = connection

    async def mark_published(self, rows: Sequence[OutboxRow]) -> None:
        if not rows:
            return
        # One statement for both tables: a round trip less per batch. An order keeps the time
        # it was first published; a re-driven event only marks its outbox row.
        await self._connection.execute(
            """
            WITH published AS (
                UPDATE outbox SET published_at = clock_timestamp() WHERE id = ANY($1::bigint[])
                RETURNING aggregate_id
            )
            UPDATE orders SET published_at = clock_timestamp()
            FROM published WHERE orders.id = published.aggregate_id AND orders.published_at IS NULL
            """,
            [row.id for row in rows],
        )

    async def mark_refused(self, refused: Sequence[Refused], policy: RetryPolicy) -> int:
        """Count each refusal and put its row off, twice as long each time (``policy``'s backoff,
        without its jitter: the rows of a batch need none); park a row that has used up its
        attempts. How many were parked now."""
        if not refused:
            return 0
        parked = await self._connection.fetchval(
            """
            WITH refused AS (
                UPDATE outbox SET
                    attempts = attempts + 1,
                    last_error = refusal.error,
                    next_attempt_at = clock_timestamp()
                        + make_interval(secs => least($4::float8, $3::float8 * 2 ^ attempts)),
                    parked_at = CASE WHEN attempts + 1 >= $5 THEN clock_timestamp() END
                FROM unnest($1::bigint[], $2::text[]) AS refusal(id, error)
                WHERE outbox.id = refusal.id
                RETURNING parked_at
            )
            SELECT count(parked_at) FROM refused
            """,
            [row.id for row, _ in refused],
            [error for _, error in refused],
            policy.first_backoff_seconds,
            policy.max_backoff_seconds,
            policy.max_attempts,
        )
        return int(parked)


@asynccontextmanager
async def claim_batch(pool: Pool, limit: int) -> AsyncIterator[Claim]:
    """Lock up to ``limit`` rows due for publishing, oldest first, skipping rows other relays
    hold, rows put off after a refusal until their time, and parked rows.

    The locks last until the block ends, so relays running side by side never claim the
    same row; whatever the block marks is committed with it.
    """
    async with pool.acquire() as connection, connection.transaction():
        records = await connection.fetch(
            """
            SELECT id, event_id, event_type, aggregate_id, payload::text AS payload, traceparent, tracestate
            FROM outbox
            WHERE published_at IS NULL AND parked_at IS NULL
              AND (next_attempt_at IS NULL OR next_attempt_at <= clock_timestamp())
            ORDER BY id LIMIT $1
            FOR UPDATE SKIP LOCKED
            """,
            limit,
        )
        yield Claim([OutboxRow(**dict(record)) for record in records], connection)


async def backlog(pool: Pool) -> Backlog:
    record = await pool.fetchrow(
        """SELECT count(*) FILTER (WHERE parked_at IS NULL) AS rows,
                  coalesce(extract(epoch FROM clock_timestamp() - min(created_at) FILTER (WHERE parked_at IS NULL)),
                           0)::float8 AS age,
                  count(*) FILTER (WHERE parked_at IS NOT NULL) AS parked
           FROM outbox WHERE published_at IS NULL"""
    )
    if record is None:  # An aggregate over a table always yields one row.
        raise RuntimeError("backlog query returned no row")
    return Backlog(rows=int(record["rows"]), oldest_age_seconds=float(record["age"]), parked=int(record["parked"]))


@dataclass(frozen=True)
class Parked:
    """An outbox row the relays stopped trying, and why."""

    order_id: UUID
    event_id: UUID
    event_type: str
    attempts: int
    last_error: str | None
    parked_at: datetime


async def unpark(pool: Pool, *, order_ids: Sequence[UUID] | None, dry_run: bool) -> list[Parked]:
    """Give parked rows (of ``order_ids``, or all) their attempts back, so that the relays try
    them again at once; the rows as they were. Safe to repeat: a row is published once."""
    async with pool.acquire() as connection, connection.transaction():
        rows = await connection.fetch(
            """SELECT id, aggregate_id AS order_id, event_id, event_type, attempts, last_error, parked_at
               FROM outbox
               WHERE published_at IS NULL AND parked_at IS NOT NULL
                 AND ($1::uuid[] IS NULL OR aggregate_id = ANY($1::uuid[]))
               ORDER BY id FOR UPDATE""",
            None if order_ids is None else list(order_ids),
        )
        if rows and not dry_run:
            await connection.execute(
                """UPDATE outbox SET parked_at = NULL, next_attempt_at = NULL, attempts = 0
                   WHERE id = ANY($1::bigint[])""",
                [row["id"] for row in rows],
            )
            await connection.execute("SELECT pg_notify($1, '')", NOTIFY_CHANNEL)
    return [Parked(**{name: row[name] for name in Parked.__dataclass_fields__}) for row in rows]


@dataclass(frozen=True)
class Redriven:
    """An OrderCreated event put back in the outbox, and when it had first gone out."""

    order_id: UUID
    event_id: UUID
    first_published_at: datetime


class NotRedrivable(Exception):
    """Orders asked for by id that cannot be re-driven, each with why; nothing was changed."""

    def __init__(self, reasons: dict[UUID, str]) -> None:
        super().__init__("; ".join(f"{order_id}: {reason}" for order_id, reason in reasons.items()))
        self.reasons = reasons


async def redrive(
    pool: Pool,
    *,
    event_type: str,
    order_ids: Sequence[UUID] | None,
    stuck_for_seconds: float,
    limit: int,
    dry_run: bool,
) -> list[Redriven]:
    """Mark the ``event_type`` events of orders still waiting for their notification unpublished
    again, so the relays publish them once more, with their original event ids.

    Safe by construction: every consumer drops an event id it has seen, so a re-driven event
    either repairs a lost delivery or changes nothing. ``order_ids`` names the orders (all of
    them must be published and not yet notified, or nothing changes); without it, every order
    published more than ``stuck_for_seconds`` ago and still not notified, oldest first.
    """
    async with pool.acquire() as connection, connection.transaction():
        if order_ids is not None:
            rows = await connection.fetch(
                f"""{_REDRIVE_SELECT} WHERE o.id = ANY($2::uuid[]) ORDER BY x.id FOR UPDATE OF x""",
                event_type,
                list(order_ids),
            )
            _refuse_ineligible(order_ids, rows)
        else:
            rows = await connection.fetch(
                f"""{_REDRIVE_SELECT}
                    WHERE o.status = 'accepted'
                      AND x.published_at < clock_timestamp() - make_interval(secs => $2)
                    ORDER BY x.id LIMIT $3 FOR UPDATE OF x SKIP LOCKED""",
                event_type,
                stuck_for_seconds,
                limit,
            )
        if rows and not dry_run:
            await connection.execute(
                "UPDATE outbox SET published_at = NULL WHERE id = ANY($1::bigint[])", [row["row_id"] for row in rows]
            )
            # The relays sleep until notified; wake them at commit, as a new order would.
            await connection.execute("SELECT pg_notify($1, '')", NOTIFY_CHANNEL)
    return [Redriven(row["order_id"], row["event_id"], row["published_at"]) for row in rows]


_REDRIVE_SELECT = """
    SELECT o.id AS order_id, o.status, x.id AS row_id, x.event_id, x.published_at
    FROM orders o JOIN outbox x ON x.aggregate_id = o.id AND x.event_type = $1"""


def _refuse_ineligible(order_ids: Sequence[UUID], rows: Sequence[Record]) -> None:
    found = {row["order_id"]: row for row in rows}
    reasons = {}
    for order_id in order_ids:
        row = found.get(order_id)
        if row is None:
            reasons[order_id] = "no such order"
        elif row["status"] != "accepted":
            reasons[order_id] = f"already {row['status']}"
        elif row["published_at"] is None:
            reasons[order_id] = "not published yet (the relay will publish it)"
    if reasons:
        raise NotRedrivable(reasons)
