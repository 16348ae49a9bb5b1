"""Every SQL statement of the orders web process and worker."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID, uuid4

import asyncpg

from orders.models import Order, OrderPage, PlaceOrder
from shared.db import Pool, PoolConnection
from shared.events import Envelope, OrderCreatedV1, OrderLineV1, encode, new_event


class IdempotencyConflict(Exception):
    """The Idempotency-Key was used before with a different request."""


@dataclass(frozen=True)
class Placed:
    order: Order
    replayed: bool


def _order(row: asyncpg.Record) -> Order:
    return Order.model_validate({**dict(row), "items": json.loads(row["items"])})


async def place_order(
    pool: Pool,
    request: PlaceOrder,
    *,
    idempotency_key: str,
    event_source: str,
    trace_context: dict[str, str],
) -> Placed:
    """Insert the order and its OrderCreated event in one transaction, or replay the original.

    The unique constraint on (customer_id, idempotency_key) decides between concurrent
    duplicates: the losers wait for the winner's commit, insert nothing, and read its order.
    """
    order_id = uuid4()
    items = json.dumps([line.model_dump() for line in request.items])
    async with pool.acquire() as connection, connection.transaction():
        row = await connection.fetchrow(
            """
            INSERT INTO orders (id, customer_id, currency, items, total_cents, status, idempotency_key, request_hash)
            VALUES ($1, $2, $3, $4, $5, 'accepted', $6, $7)
            ON CONFLICT ON CONSTRAINT orders_idempotency DO NOTHING
            RETURNING id, customer_id, currency, items, total_cents, status, created_at, published_at, notified_at
            """,
            order_id,
            request.customer_id,
            request.currency,
            items,
            request.total_cents,
            idempotency_key,
            request.fingerprint(),
        )
        if row is None:
            return await _replay(connection, request, idempotency_key)
        order = _order(row)
        event = _order_created(order, event_source, trace_context)
        await connection.execute(
            """
            INSERT INTO outbox (event_id, event_type, aggregate_id, payload, traceparent, tracestate)
            VALUES ($1, $2, $3, $4, $5, $6)
            """,
            event.id,
            event.type,
            order.id,
            encode(event).decode(),
            event.traceparent,
            event.tracestate,
        )
    return Placed(order, replayed=False)


async def _replay(connection: PoolConnection, request: PlaceOrder, idempotency_key: str) -> Placed:
    row = await connection.fetchrow(
        """SELECT id, customer_id, currency, items, total_cents, status, created_at, published_at, notified_at,
                  request_hash
           FROM orders WHERE customer_id = $1 AND idempotency_key = $2""",
        request.customer_id,
        idempotency_key,
    )
    if row is None:
        # Only reachable if the conflicting order vanished between the two statements.
        raise LookupError(f"idempotency key {idempotency_key!r} conflicted but no order holds it")
    if row["request_hash"] != request.fingerprint():
        raise IdempotencyConflict(idempotency_key)
    return Placed(_order(row), replayed=True)


def _order_created(order: Order, source: str, trace_context: dict[str, str]) -> Envelope[OrderCreatedV1]:
    data = OrderCreatedV1(
        order_id=order.id,
        customer_id=order.customer_id,
        currency=order.currency,
        items=tuple(OrderLineV1(**line.model_dump()) for line in order.items),
        total_cents=order.total_cents,
        created_at=order.created_at,
    )
    return new_event(
        data,
        source=source,
        subject=str(order.id),
        time=order.created_at,
        traceparent=trace_context.get("traceparent"),
        tracestate=trace_context.get("tracestate"),
    )


async def get_order(pool: Pool, order_id: UUID) -> Order | None:
    row = await pool.fetchrow(
        """SELECT id, customer_id, currency, items, total_cents, status, created_at, published_at, notified_at
           FROM orders WHERE id = $1""",
        order_id,
    )
    return None if row is None else _order(row)


def encode_cursor(created_at: datetime, order_id: UUID) -> str:
    raw = f"{created_at.isoformat()}|{order_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, UUID]:
    """Raises ValueError for anything that is not a cursor this service issued."""
    padded = cursor + "=" * (-len(cursor) % 4)
    created_at, order_id = base64.urlsafe_b64decode(padded).decode().split("|")
    return datetime.fromisoformat(created_at), UUID(order_id)


async def list_orders(pool: Pool, customer_id: str, *, limit: int, after: tuple[datetime, UUID] | None) -> OrderPage:
    """Newest first, by keyset: stable under concurrent inserts and cheap at any depth."""
    if after is None:
        rows = await pool.fetch(
            """SELECT id, customer_id, currency, items, total_cents, status, created_at, published_at, notified_at
               FROM orders WHERE customer_id = $1
               ORDER BY created_at DESC, id DESC LIMIT $2""",
            customer_id,
            limit + 1,
        )
    else:
        rows = await pool.fetch(
            """SELECT id, customer_id, currency, items, total_cents, status, created_at, published_at, notified_at
               FROM orders WHERE customer_id = $1 AND (created_at, id) < ($2, $3)
               ORDER BY created_at DESC, id DESC LIMIT $4""",
            customer_id,
            after[0],
            after[1],
            limit + 1,
        )
    orders = [_order(row) for row in rows[:limit]]
    more = len(rows) > limit
    return OrderPage(
        items=orders,
        next_cursor=encode_cursor(orders[-1].created_at, orders[-1].id) if more else None,
    )


@dataclass(frozen=True)
class Notified:
    created_at: datetime
    notified_at: datetime


async def mark_notified(pool: Pool, *, event_id: UUID, event_type: str, order_id: UUID) -> Notified | None:
    """Record the event in the inbox and mark the order, in one transaction.

    Returns None for an event already seen (a redelivery): nothing changes then.
    Raises LookupError when the order does not exist.
    """
    async with pool.acquire() as connection, connection.transaction():
        first_time = await connection.fetchval(
            "INSERT INTO inbox (event_id, event_type) VALUES ($1, $2) ON CONFLICT DO NOTHING RETURNING true",
            event_id,
            event_type,
        )
        if not first_time:
            return None
        updated = await connection.fetchrow(
            """
            UPDATE orders SET status = 'notified', notified_at = coalesce(notified_at, clock_timestamp())
            WHERE id = $1 RETURNING created_at, notified_at
            """,
            order_id,
        )
        if updated is None:
            raise LookupError(f"no order {order_id}")
    return Notified(created_at=updated["created_at"], notified_at=updated["notified_at"])
