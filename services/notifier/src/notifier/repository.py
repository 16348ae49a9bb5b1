"""Every SQL statement of the notifier."""

from __future__ import annotations

from collections.abc import AsyncIterator
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


class EventClaim:
    """Exclusive hold on one OrderCreated event id until the transaction ends."""

    def __init__(self, connection: PoolConnection, event_id: UUID) -> None:
        self._connection = connection
        self._event_id = event_id

    async def notification(self) -> Notification | None:
        row = await self._connection.fetchrow(
            """SELECT id, order_created_event_id, order_id, customer_id, channel, recipient, message_id, sent_at
               FROM notifications WHERE order_created_event_id = $1""",
            self._event_id,
        )
        return None if row is None else Notification(**dict(row))

    async def record(self, notification: Notification) -> None:
        await self._connection.execute(
            """
            INSERT INTO notifications (id, order_created_event_id, order_id, customer_id, channel, recipient,
                                       message_id, sent_at)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
            """,
            notification.id,
            notification.order_created_event_id,
            notification.order_id,
            notification.customer_id,
            notification.channel,
            notification.recipient,
            notification.message_id,
            notification.sent_at,
        )


@asynccontextmanager
async def claim(pool: Pool, event_id: UUID) -> AsyncIterator[EventClaim]:
    """Serialise every delivery of one event, across workers: a transaction-scoped advisory lock.

    Copies of an event delivered at the same moment wait here, then find the first one's
    row, so the email is sent once. Whatever the block records commits with it.
    """
    lock_key = int.from_bytes(event_id.bytes[:8], "big", signed=True)
    async with pool.acquire() as connection, connection.transaction():
        await connection.execute("SELECT pg_advisory_xact_lock($1)", lock_key)
        yield EventClaim(connection, event_id)
