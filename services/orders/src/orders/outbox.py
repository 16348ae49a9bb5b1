"""The outbox table as the relay sees it: claim unpublished rows, mark them published."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from uuid import UUID

from shared.db import Pool, PoolConnection


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


class Claim:
    """A batch of rows locked by this relay until the transaction ends."""

    def __init__(self, rows: list[OutboxRow], connection: PoolConnection) -> None:
        self.rows = rows
        self._connection = connection

    async def mark_published(self, rows: Sequence[OutboxRow]) -> None:
        if not rows:
            return
        await self._connection.execute(
            "UPDATE outbox SET published_at = clock_timestamp() WHERE id = ANY($1::bigint[])",
            [row.id for row in rows],
        )
        await self._connection.execute(
            """UPDATE orders SET published_at = clock_timestamp()
               WHERE id = ANY($1::uuid[]) AND published_at IS NULL""",
            [row.aggregate_id for row in rows],
        )


@asynccontextmanager
async def claim_batch(pool: Pool, limit: int) -> AsyncIterator[Claim]:
    """Lock up to ``limit`` unpublished rows, oldest first, skipping rows other relays hold.

    The locks last until the block ends, so relays running side by side never claim the
    same row; whatever the block marks is committed with it.
    """
    async with pool.acquire() as connection, connection.transaction():
        records = await connection.fetch(
            """
            SELECT id, event_id, event_type, aggregate_id, payload::text AS payload, traceparent, tracestate
            FROM outbox WHERE published_at IS NULL
            ORDER BY id LIMIT $1
            FOR UPDATE SKIP LOCKED
            """,
            limit,
        )
        yield Claim([OutboxRow(**dict(record)) for record in records], connection)


async def backlog(pool: Pool) -> Backlog:
    record = await pool.fetchrow(
        """SELECT count(*) AS rows,
                  coalesce(extract(epoch FROM clock_timestamp() - min(created_at)), 0)::float8 AS age
           FROM outbox WHERE published_at IS NULL"""
    )
    if record is None:  # An aggregate over a table always yields one row.
        raise RuntimeError("backlog query returned no row")
    return Backlog(rows=int(record["rows"]), oldest_age_seconds=float(record["age"]))
