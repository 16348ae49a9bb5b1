"""The public API: /api/v1/orders, authenticated by bearer token, forwarded to orders."""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID

import aiohttp
from aiohttp import web
from aiohttp.typedefs import Handler
from pydantic import ValidationError

from gateway.edge import SECURITY_HEADERS
from gateway.keys import SETTINGS, STREAM_SLOTS, TOKENS
from gateway.models import IDEMPOTENCY_KEY_PATTERN, Order, OrderPage, PlaceOrderRequest, ProblemDetails
from gateway.openapi import document
from gateway.ratelimit import RATE_LIMITS, RateLimited, RateLimiter
from gateway.tokens import InvalidToken
from gateway.upstream import ORDERS, UpstreamAnswer
from shared.events.updates import ORDER_UPDATED, RESYNC
from shared.web import PROBLEM_CONTENT_TYPE, Problem, json_body
from shared.web.streams import Event, read_events, send_events

IDEMPOTENCY_KEY = "Idempotency-Key"
REPLAYED = "Idempotent-Replayed"
REQUEST_ID = "X-Request-Id"
_REQUEST_ID_FORMAT = re.compile(r"^[A-Za-z0-9._-]{1,128}$")
_IDEMPOTENCY_KEY_FORMAT = re.compile(IDEMPOTENCY_KEY_PATTERN)

REQUEST_ID_KEY = web.RequestKey("request_id", str)

routes = web.RouteTableDef()
OPENAPI_PATH = "/api/openapi.json"
# Not under /api/v1/orders/, where it would read as an order's id.
UPDATES_PATH = "/api/v1/order-updates"
log = logging.getLogger(__name__)


@web.middleware
async def request_id_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Keep the caller's request id if it is sane, else make one; echo it on every answer."""
    offered = request.headers.get(REQUEST_ID, "")
    request_id = offered if _REQUEST_ID_FORMAT.match(offered) else uuid.uuid4().hex
    request[REQUEST_ID_KEY] = request_id
    response = await handler(request)
    response.headers[REQUEST_ID] = request_id
    return response


async def authenticated_customer(request: web.Request) -> str:
    """The token's subject, once it is within its rate limit."""
    limits = request.app[RATE_LIMITS]
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        await within_limit(limits.per_address, request.remote or "unknown")
        raise _unauthorized("A bearer token is required.", error=None)
    try:
        customer = request.app[TOKENS].verify(token.strip())
    except InvalidToken as exc:
        await within_limit(limits.per_address, request.remote or "unknown")
        raise _unauthorized(str(exc), error="invalid_token") from None
    await within_limit(limits.per_customer, customer)
    return customer


async def within_limit(limiter: RateLimiter, key: str) -> None:
    try:
        await limiter.admit(key)
    except RateLimited as limited:
        raise Problem(
            429,
            "Too Many Requests",
            "The request rate is over its limit; retry after the given seconds.",
            headers={"Retry-After": str(limited.retry_after_seconds)},
        ) from None


def _unauthorized(detail: str, *, error: str | None) -> Problem:
    challenge = 'Bearer realm="dozen"' + (f', error="{error}"' if error else "")
    return Problem(401, "Unauthorized", detail, headers={"WWW-Authenticate": challenge})


def _not_found() -> Problem:
    return Problem(404, "Not Found", "No such order.")


def _relay_problem(answer: UpstreamAnswer) -> web.Response:
    # orders' own problem documents, narrowed to the public fields.
    try:
        problem = ProblemDetails.model_validate(answer.body)
    except ValidationError:
        raise Problem(502, "Bad Gateway", "The order service answered with something unreadable.") from None
    return web.json_response(
        text=problem.model_dump_json(exclude_none=True), status=answer.status, content_type=PROBLEM_CONTENT_TYPE
    )


def _upstream_order(payload: Any) -> Order:
    try:
        return Order.model_validate(payload)
    except ValidationError:
        raise Problem(502, "Bad Gateway", "The order service answered with something unreadable.") from None


def _order_response(order: Order, *, status: int, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(text=order.model_dump_json(), status=status, headers=headers)


@routes.post("/api/v1/orders")
async def place_order(request: web.Request) -> web.Response:
    customer = await authenticated_customer(request)
    key = request.headers.get(IDEMPOTENCY_KEY, "")
    if not key:
        raise Problem(400, "Bad Request", f"The {IDEMPOTENCY_KEY} header is required.")
    if not _IDEMPOTENCY_KEY_FORMAT.fullmatch(key):
        raise Problem(400, "Bad Request", f"{IDEMPOTENCY_KEY} must be 1-255 printable ASCII characters.")
    order = await json_body(request, PlaceOrderRequest)
    answer = await request.app[ORDERS].call(
        "POST",
        "/orders",
        route="/orders",
        request_id=request[REQUEST_ID_KEY],
        json_body={"customer_id": customer, **order.model_dump()},
        headers={IDEMPOTENCY_KEY: key},
    )
    if answer.status != 201:
        return _relay_problem(answer)
    placed = _upstream_order(answer.body)
    headers = {"Location": f"/api/v1/orders/{placed.id}"}
    if answer.headers.get(REPLAYED):
        headers[REPLAYED] = answer.headers[REPLAYED]
    return _order_response(placed, status=201, headers=headers)


@routes.get("/api/v1/orders/{order_id}")
async def read_order(request: web.Request) -> web.Response:
    customer = await authenticated_customer(request)
    try:
        order_id = UUID(request.match_info["order_id"])
    except ValueError:
        raise _not_found() from None
    answer = await request.app[ORDERS].call(
        "GET", f"/orders/{order_id}", route="/orders/{order_id}", request_id=request[REQUEST_ID_KEY]
    )
    if answer.status == 404:
        raise _not_found()
    if answer.status != 200:
        return _relay_problem(answer)
    order = _upstream_order(answer.body)
    # Another customer's order is answered exactly like one that does not exist.
    if order.customer_id != customer:
        raise _not_found()
    return _order_response(order, status=200)


@routes.get("/api/v1/orders")
async def list_orders(request: web.Request) -> web.Response:
    customer = await authenticated_customer(request)
    params = {"customer_id": customer}
    params.update({name: request.query[name] for name in ("limit", "after") if name in request.query})
    answer = await request.app[ORDERS].call(
        "GET", "/orders", route="/orders", request_id=request[REQUEST_ID_KEY], params=params
    )
    if answer.status != 200:
        return _relay_problem(answer)
    try:
        page = OrderPage.model_validate(answer.body)
    except ValidationError:
        raise Problem(502, "Bad Gateway", "The order service answered with something unreadable.") from None
    if any(order.customer_id != customer for order in page.items):
        raise Problem(502, "Bad Gateway", "The order service answered with something unreadable.")
    return web.json_response(text=page.model_dump_json())


@routes.get(UPDATES_PATH)
async def order_updates(request: web.Request) -> web.StreamResponse:
    """The token's customer's orders as they move on, as Server-Sent Events (the board's live view)."""
    customer = await authenticated_customer(request)
    settings = request.app[SETTINGS]
    with request.app[STREAM_SLOTS].taken():
        async with request.app[ORDERS].stream(
            "/order-updates", request_id=request[REQUEST_ID_KEY], params={"customer_id": customer}
        ) as upstream:
            # Sent with the first bytes: the middlewares' headers would come too late for a stream.
            headers = {**SECURITY_HEADERS, REQUEST_ID: request[REQUEST_ID_KEY]}
            return await send_events(
                request,
                _customers_updates(read_events(upstream.content), customer, request[REQUEST_ID_KEY]),
                max_seconds=settings.update_stream_max_seconds,
                headers=headers,
            )


async def _customers_updates(upstream: AsyncIterator[Event], customer: str, request_id: str) -> AsyncIterator[Event]:
    """orders' events, narrowed to the public fields; a stream that carries anything else ends."""
    try:
        async for kind, data in upstream:
            if kind == RESYNC:
                yield RESYNC, "{}"
            elif kind == ORDER_UPDATED:
                order = Order.model_validate_json(data)
                # Never another customer's order, whatever orders sends.
                if order.customer_id != customer:
                    log.error("orders streamed another customer's order", extra={"request_id": request_id})
                    return
                yield ORDER_UPDATED, order.model_dump_json()
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        # The client reconnects, and resyncs: nothing it shows is lost.
        log.warning("order updates from orders ended", extra={"request_id": request_id, "error": type(exc).__name__})


@routes.get(OPENAPI_PATH)
async def openapi(request: web.Request) -> web.Response:
    await within_limit(request.app[RATE_LIMITS].per_address, request.remote or "unknown")
    return web.json_response(document())
