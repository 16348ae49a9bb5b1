"""Every SQL statement of the orders web process and worker."""

from __future__ import annotations

import base64
import json
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID, uuid4

import asyncpg
from opentelemetry.trace import INVALID_SPAN_CONTEXT, Link, SpanContext

from orders.models import Order, OrderPage, PlaceOrder
from shared.db import Pool, db_span
from shared.events import Envelope, OrderCreatedV1, OrderLineV1, encode, new_event


class IdempotencyConflict(Exception):
    """The Idempotency-Key was used before with a different request."""


@dataclass(frozen=True)
class Placed:
    order: Order
    replayed: bool


def _order(row: asyncpg.Record) -> Order:
    return Order.model_validate({**dict(row), "items": json.loads(row["items"])})


@dataclass(frozen=True)
class Placement:
    """One order to place: what the client asked for, under which key, in which trace."""

    request: PlaceOrder
    idempotency_key: str
    # The W3C trace context the order's event carries on, and the span placing it.
    trace_context: dict[str, str]
    span: SpanContext = INVALID_SPAN_CONTEXT


async def place_order(
    pool: Pool,
    request: PlaceOrder,
    *,
    idempotency_key: str,
    event_source: str,
    trace_context: dict[str, str],
) -> Placed:
    """One order placed (or replayed) on its own; see place_orders."""
    [outcome] = await place_orders(
        pool, [Placement(request, idempotency_key, trace_context)], event_source=event_source
    )
    if isinstance(outcome, Exception):
        raise outcome
    return outcome


async def place_orders(pool: Pool, placements: Sequence[Placement], *, event_source: str) -> list[Placed | Exception]:
    """Insert each order with its OrderCreated event, all in one statement; or replay the original.

    One statement is one transaction and one round trip, for the whole batch: a transaction of
    BEGIN, two INSERTs and COMMIT per order took four, the largest share of the orders web's
    CPU under load (profiled under `make bench`). So each order and its event are complete
    before the statement runs, stamped by this process's clock. The unique constraint on
    (customer_id, idempotency_key) decides between concurrent duplicates, in this batch or
    another: the losers insert nothing (no event either), and read the winner's order.
    A batch the server refuses as a whole (one bad order) is tried again order by order, so
    that only the bad one fails. One outcome per placement, in order.
    """
    orders = [_new_order(placement.request, placement.trace_context) for placement in placements]
    events = [
        _order_created(order, event_source, placement.trace_context)
        for order, placement in zip(orders, placements, strict=True)
    ]
    links = [Link(placement.span) for placement in placements[1:] if placement.span.is_valid]
    try:
        with db_span("INSERT orders outbox", batch_size=len(placements), links=links):
            rows = await pool.fetch(
                """
                WITH arrived AS (
                    SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::jsonb[], $5::bigint[], $6::text[],
                                         $7::text[], $8::timestamptz[], $9::uuid[], $10::text[], $11::jsonb[],
                                         $12::text[], $13::text[], $14::text[])
                        WITH ORDINALITY AS a(id, customer_id, currency, items, total_cents, idempotency_key,
                                             request_hash, created_at, event_id, event_type, payload, traceparent,
                                             tracestate, trace_id, position)
                ), placed AS (
                    INSERT INTO orders (id, customer_id, currency, items, total_cents, status, idempotency_key,
                                        request_hash, created_at, trace_id)
                    SELECT id, customer_id, currency, items, total_cents, 'accepted', idempotency_key, request_hash,
                           created_at, trace_id
                    FROM arrived ORDER BY position
                    ON CONFLICT ON CONSTRAINT orders_idempotency DO NOTHING
                    RETURNING id
                )
                INSERT INTO outbox (event_id, event_type, aggregate_id, payload, traceparent, tracestate)
                SELECT arrived.event_id, arrived.event_type, arrived.id, arrived.payload, arrived.traceparent,
                       arrived.tracestate
                FROM arrived JOIN placed USING (id) ORDER BY arrived.position
                RETURNING aggregate_id
                """,
                [order.id for order in orders],
                [order.customer_id for order in orders],
                [order.currency for order in orders],
                [json.dumps([line.model_dump() for line in order.items]) for order in orders],
                [order.total_cents for order in orders],
                [placement.idempotency_key for placement in placements],
                [placement.request.fingerprint() for placement in placements],
                [order.created_at for order in orders],
                [event.id for event in events],
                [event.type for event in events],
                [encode(event).decode() for event in events],
                [event.traceparent for event in events],
                [event.tracestate for event in events],
                [order.trace_id for order in orders],
            )
    except asyncpg.PostgresError:
        if len(placements) == 1:
            raise
        return [await _alone(pool, placement, event_source) for placement in placements]
    inserted = {row["aggregate_id"] for row in rows}
    return [
        Placed(order, replayed=False) if order.id in inserted else await _replayed(pool, placement)
        for order, placement in zip(orders, placements, strict=True)
    ]


def _new_order(request: PlaceOrder, trace_context: dict[str, str]) -> Order:
    return Order(
        id=uuid4(),
        customer_id=request.customer_id,
        currency=request.currency,
        items=request.items,
        total_cents=request.total_cents,
        status="accepted",
        created_at=datetime.now(UTC),
        published_at=None,
        notified_at=None,
        trace_id=trace_id_of(trace_context.get("traceparent")),
    )


def trace_id_of(traceparent: str | None) -> str | None:
    """The trace id of a W3C ``traceparent`` (version-traceid-spanid-flags)."""
    parts = (traceparent or "").split("-")
    return parts[1] if len(parts) == 4 else None


async def _alone(pool: Pool, placement: Placement, event_source: str) -> Placed | Exception:
    try:
        [outcome] = await place_orders(pool, [placement], event_source=event_source)
    except asyncpg.PostgresError as failure:
        return failure
    return outcome


async def _replayed(pool: Pool, placement: Placement) -> Placed | Exception:
    try:
        return await _replay(pool, placement.request, placement.idempotency_key)
    except (IdempotencyConflict, LookupError) as failure:
        return failure


async def _replay(pool: Pool, request: PlaceOrder, idempotency_key: str) -> Placed:
    row = await pool.fetchrow(
        """SELECT id, customer_id, currency, items, total_cents, status, created_at, published_at, notified_at,
                  trace_id, request_hash
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
        """SELECT id, customer_id, currency, items, total_cents, status, created_at, published_at, notified_at,
                  trace_id
           FROM orders WHERE id = $1""",
        order_id,
    )
    return None if row is None else _order(row)


async def get_orders(pool: Pool, order_ids: Collection[UUID]) -> list[Order]:
    """Those of the orders that exist, in no particular order."""
    rows = await pool.fetch(
        """SELECT id, customer_id, currency, items, total_cents, status, created_at, published_at, notified_at,
                  trace_id
           FROM orders WHERE id = ANY($1::uuid[])""",
        list(order_ids),
    )
    return [_order(row) for row in rows]


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
            """SELECT id, customer_id, currency, items, total_cents, status, created_at, published_at, notified_at,
                  trace_id
               FROM orders WHERE customer_id = $1
               ORDER BY created_at DESC, id DESC LIMIT $2""",
            customer_id,
            limit + 1,
        )
    else:
        rows = await pool.fetch(
            """SELECT id, customer_id, currency, items, total_cents, status, created_at, published_at, notified_at,
                  trace_id
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
class Notification:
    """A NotificationSent event as the worker records it."""

    event_id: UUID
    event_type: str
    order_id: UUID


@dataclass(frozen=True)
class Notified:
    created_at: datetime
    notified_at: datetime


@dataclass(frozen=True)
class Marked:
    """What one batch of notifications changed: the orders notified now (by event id), and the
    events that name no order at all."""

    notified: dict[UUID, Notified]
    unknown_orders: set[UUID]


async def mark_notified(pool: Pool, notifications: Sequence[Notification]) -> Marked:
    """Record the events in the inbox and mark their orders notified, in one statement.

    One statement is one transaction, and one round trip for the whole batch. An event seen
    before (a redelivery) changes nothing and is in neither result; an event whose order does
    not exist records nothing either, and is named in ``unknown_orders``.
    """
    rows = await pool.fetch(
        """
        WITH arrived AS (
            SELECT * FROM unnest($1::uuid[], $2::text[], $3::uuid[]) AS e(event_id, event_type, order_id)
        ), known AS (
            SELECT arrived.* FROM arrived JOIN orders ON orders.id = arrived.order_id
        ), fresh AS (
            INSERT INTO inbox (event_id, event_type) SELECT event_id, event_type FROM known
            ON CONFLICT DO NOTHING RETURNING event_id
        ), marked AS (
            UPDATE orders SET status = 'notified', notified_at = coalesce(notified_at, clock_timestamp())
            FROM known JOIN fresh USING (event_id)
            WHERE orders.id = known.order_id
            RETURNING orders.id AS order_id, orders.created_at, orders.notified_at
        )
        SELECT arrived.event_id, known.event_id IS NOT NULL AS order_known,
               marked.created_at, marked.notified_at
        FROM arrived
        LEFT JOIN known USING (event_id)
        LEFT JOIN fresh USING (event_id)
        LEFT JOIN marked ON marked.order_id = known.order_id AND fresh.event_id IS NOT NULL
        """,
        [notification.event_id for notification in notifications],
        [notification.event_type for notification in notifications],
        [notification.order_id for notification in notifications],
    )
    notified: dict[UUID, Notified] = {}
    unknown: set[UUID] = set()
    for row in rows:
        if not row["order_known"]:
            unknown.add(row["event_id"])
        elif row["notified_at"] is not None:
            notified[row["event_id"]] = Notified(created_at=row["created_at"], notified_at=row["notified_at"])
    return Marked(notified=notified, unknown_orders=unknown)
