"""Live order updates, for the board: the database says which order moved on (published,
notified), and each stream of that order's customer gets the order as it now stands.

The database is the one source: a trigger notifies at commit (migration 0003), whichever
process made the change, and every orders web replica listens, so a stream may be opened on
any of them. An order is read only when some stream here is for its customer: with nobody
watching, an update costs this process nothing but the notification.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import defaultdict
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from uuid import UUID

import asyncpg

from orders.repository import get_orders
from shared.db import UNAVAILABLE_ERRORS, Pool
from shared.events.updates import ORDER_UPDATED, RESYNC
from shared.web.streams import Event

log = logging.getLogger(__name__)

# The database out of reach, or refusing anything for now: the streams resync once it is back.
_UNREADABLE: tuple[type[BaseException], ...] = (asyncpg.PostgresError, *UNAVAILABLE_ERRORS)

CHANNEL = "order_updates"  # the trigger's (migration 0003)
RESYNC_EVENT: Event = (RESYNC, "{}")
# Updates a stream may fall behind by before it is told to resync instead.
QUEUE_SIZE = 64


class Subscription:
    """One stream's updates, in order, bounded."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[Event] = asyncio.Queue(QUEUE_SIZE)

    def offer(self, event: Event) -> None:
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            # What it missed is replaced by one instruction to read it all again.
            self._queue = asyncio.Queue(QUEUE_SIZE)
            self._queue.put_nowait(RESYNC_EVENT)

    async def events(self) -> AsyncIterator[Event]:
        while True:
            yield await self._queue.get()


class OrderUpdates:
    def __init__(self, pool: Pool) -> None:
        self._pool = pool
        self._subscriptions: defaultdict[str, set[Subscription]] = defaultdict(set)
        self._due: set[UUID] = set()
        self._reading: asyncio.Task[None] | None = None

    @contextmanager
    def subscribed(self, customer_id: str) -> Iterator[Subscription]:
        subscription = Subscription()
        self._subscriptions[customer_id].add(subscription)
        try:
            yield subscription
        finally:
            self._subscriptions[customer_id].discard(subscription)
            if not self._subscriptions[customer_id]:
                del self._subscriptions[customer_id]

    def notified(self, payload: str) -> None:
        try:
            update = json.loads(payload)
            customer_id, order_id = update["customer_id"], UUID(update["id"])
        except (ValueError, KeyError, TypeError):
            log.warning("unreadable order update notification", extra={"payload": payload[:200]})
            return
        if customer_id not in self._subscriptions:
            return
        self._due.add(order_id)
        # One read at a time, of every order due by then: a burst of updates is a few queries.
        if self._reading is None or self._reading.done():
            self._reading = asyncio.create_task(self._read_due(), name="order-updates-read")

    def listening(self) -> None:
        """Listening (again): whatever was notified while nobody listened is unknown."""
        self._resync_all()

    async def close(self) -> None:
        if self._reading is not None:
            self._reading.cancel()
            await asyncio.gather(self._reading, return_exceptions=True)

    def _resync_all(self) -> None:
        for subscriptions in self._subscriptions.values():
            for subscription in subscriptions:
                subscription.offer(RESYNC_EVENT)

    async def _read_due(self) -> None:
        while self._due:
            order_ids, self._due = self._due, set()
            try:
                orders = await get_orders(self._pool, order_ids)
            except _UNREADABLE as exc:
                log.warning("could not read updated orders", extra={"error": type(exc).__name__})
                self._resync_all()
                continue
            for order in orders:
                for subscription in self._subscriptions.get(order.customer_id, ()):
                    subscription.offer((ORDER_UPDATED, order.model_dump_json()))
