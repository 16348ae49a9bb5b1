"""Every SQL statement of the notifier."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from shared.db import Pool, PoolConnection


@dataclass(frozen=True)
class Notification:
    id: UUID
    order_created_event_id: UUID
    order_id: UUID
    customer_id: str
    channel: str
    recipient: str
    message_id: str
    sent_at: datetime


class EventsClaim:
    """Exclusive hold on a batch of OrderCreated event ids until the transaction ends."""

    def __init__(self, connection: PoolConnection, event_ids: Sequence[UUID]) -> None:
        self._connection = connection
        self._event_ids = list(event_ids)

    async def notifications(self) -> dict[UUID, Notification]:
        """The notifications already recorded for these events, by OrderCreated event id."""
        rows = await self._connection.fetch(
            """SELECT id, order_created_event_id, order_id, customer_id, channel, recipient, message_id, sent_at
               FROM notifications WHERE order_created_event_id = ANY($1::uuid[])""",
            self._event_ids,
        )
        return {row["order_created_event_id"]: Notification(**dict(row)) for row in rows}

    async def record(self, notifications: Sequence[Notification]) -> None:
        if not notifications:
            return
        # One round trip for every row: asyncpg pipelines executemany.
        await self._connection.executemany(
            """
            INSERT INTO notifications (id, order_created_event_id, order_id, customer_id, channel, recipient,
                                       message_id, sent_at)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
            """,
            [
                (
                    notification.id,
                    notification.order_created_event_id,
                    notification.order_id,
                    notification.customer_id,
                    notification.channel,
                    notification.recipient,
                    notification.message_id,
                    notification.sent_at,
                )
                for notification in notifications
            ],
        )


@asynccontextmanager
async def claim(pool: Pool, event_ids: Sequence[UUID]) -> AsyncIterator[EventsClaim]:
    """Serialise every delivery of the same events, across workers: transaction-scoped advisory locks.

    Copies of an event delivered at the same moment wait here, then find the first one's
    row, so the email is sent once. The locks are taken in one order (sorted keys), so two
    batches sharing events never deadlock. Whatever the block records commits with it.
    """
    keys = sorted({int.from_bytes(event_id.bytes[:8], "big", signed=True) for event_id in event_ids})
    async with pool.acquire() as connection, connection.transaction():
        await connection.execute(
            "SELECT pg_advisory_xact_lock(key) FROM unnest($1::bigint[]) AS key ORDER BY key", keys
        )
        yield EventsClaim(connection, event_ids)
