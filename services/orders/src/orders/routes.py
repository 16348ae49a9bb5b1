"""The orders HTTP API: place an order, read one, list a customer's orders."""

from __future__ import annotations

import logging
from typing import Any
from uuid import UUID

from aiohttp import web
from opentelemetry import propagate, trace

from orders.keys import DB_POOL, PLACER, STREAM_SLOTS, UPDATES, WEB_SETTINGS
from orders.models import PlaceOrder
from orders.repository import IdempotencyConflict, Placement, decode_cursor, get_order, list_orders
from shared.web import Problem, json_body, unprocessable
from shared.web.streams import send_events

EVENT_SOURCE = "/dozen/orders"
IDEMPOTENCY_KEY = "Idempotency-Key"
REPLAYED = "Idempotent-Replayed"
MAX_IDEMPOTENCY_KEY_LENGTH = 255
MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 20

# Not under /orders/, where it would read as an order's id.
UPDATES_PATH = "/order-updates"

routes = web.RouteTableDef()
log = logging.getLogger(__name__)


def _idempotency_key(request: web.Request) -> str:
    key = request.headers.get(IDEMPOTENCY_KEY, "")
    if not key:
        raise Problem(400, "Bad Request", f"The {IDEMPOTENCY_KEY} header is required.")
    if len(key) > MAX_IDEMPOTENCY_KEY_LENGTH or not key.isprintable():
        raise Problem(
            400, "Bad Request", f"{IDEMPOTENCY_KEY} must be 1-{MAX_IDEMPOTENCY_KEY_LENGTH} printable characters."
        )
    return key


@routes.post("/orders")
async def create_order(request: web.Request) -> web.Response:
    key = _idempotency_key(request)
    order_request = await json_body(request, PlaceOrder)
    trace_context: dict[str, str] = {}
    propagate.inject(trace_context)
    span = trace.get_current_span().get_span_context()
    try:
        placed = await request.app[PLACER](Placement(order_request, key, trace_context, span))
    except IdempotencyConflict:
        raise Problem(
            422, "Unprocessable Content", f"This {IDEMPOTENCY_KEY} was already used for a different order."
        ) from None
    log.info(
        "order replayed" if placed.replayed else "order accepted",
        extra={"order_id": str(placed.order.id), "customer_id": placed.order.customer_id},
    )
    headers = {"Location": f"/orders/{placed.order.id}"}
    if placed.replayed:
        headers[REPLAYED] = "true"
    return web.json_response(text=placed.order.model_dump_json(), status=201, headers=headers)


@routes.get(UPDATES_PATH)
async def order_updates(request: web.Request) -> web.StreamResponse:
    """The customer's orders as they move on, as Server-Sent Events, for the board."""
    customer_id = request.query.get("customer_id", "")
    if not customer_id:
        raise unprocessable([{"field": "customer_id", "message": "required"}])
    with request.app[STREAM_SLOTS].taken(), request.app[UPDATES].subscribed(customer_id) as subscription:
        return await send_events(
            request, subscription.events(), max_seconds=request.app[WEB_SETTINGS].update_stream_max_seconds
        )


@routes.get("/orders/{order_id}")
async def read_order(request: web.Request) -> web.Response:
    try:
        order_id = UUID(request.match_info["order_id"])
    except ValueError:
        raise Problem(404, "Not Found", "No such order.") from None
    order = await get_order(request.app[DB_POOL], order_id)
    if order is None:
        raise Problem(404, "Not Found", "No such order.")
    return web.json_response(text=order.model_dump_json())


def _page_query(request: web.Request) -> tuple[str, int, Any]:
    errors = []
    customer_id = request.query.get("customer_id", "")
    if not customer_id:
        errors.append({"field": "customer_id", "message": "required"})
    limit = DEFAULT_PAGE_SIZE
    raw_limit = request.query.get("limit")
    if raw_limit is not None:
        if raw_limit.isdigit() and 1 <= int(raw_limit) <= MAX_PAGE_SIZE:
            limit = int(raw_limit)
        else:
            errors.append({"field": "limit", "message": f"an integer from 1 to {MAX_PAGE_SIZE}"})
    after = None
    if cursor := request.query.get("after"):
        try:
            after = decode_cursor(cursor)
        except ValueError:
            errors.append({"field": "after", "message": "not a cursor this API issued"})
    if errors:
        raise unprocessable(errors)
    return customer_id, limit, after


@routes.get("/orders")
async def list_customer_orders(request: web.Request) -> web.Response:
    customer_id, limit, after = _page_query(request)
    page = await list_orders(request.app[DB_POOL], customer_id, limit=limit, after=after)
    return web.json_response(text=page.model_dump_json())
