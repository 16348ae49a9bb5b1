"""The OpenAPI 3.1 document of the public API, built from the models the gateway validates with."""

from __future__ import annotations

from functools import cache
from typing import Any

from pydantic.json_schema import models_json_schema

from gateway.models import IDEMPOTENCY_KEY_PATTERN, Order, OrderPage, PlaceOrderRequest, ProblemDetails

PROBLEM = "application/problem+json"
_REF = "#/components/schemas/{model}"


def _problem(description: str, **headers: dict[str, Any]) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": description,
        "content": {PROBLEM: {"schema": {"$ref": _REF.format(model="ProblemDetails")}}},
    }
    if headers:
        response["headers"] = headers
    return response


_RETRY_AFTER = {"schema": {"type": "string"}, "description": "Seconds to wait before retrying."}
_UPSTREAM_FAILURES = {
    "502": _problem("The order service failed to answer."),
    "503": _problem("The order service is unavailable.", **{"Retry-After": _RETRY_AFTER}),
    "504": _problem("The order service did not answer in time."),
}
_UNAUTHORIZED = {
    "401": _problem(
        "Missing, expired or invalid bearer token.",
        **{"WWW-Authenticate": {"schema": {"type": "string"}, "description": "The Bearer challenge."}},
    ),
    "429": _problem("This customer's request rate is over its limit.", **{"Retry-After": _RETRY_AFTER}),
}
_REQUEST_ID = {
    "name": "X-Request-Id",
    "in": "header",
    "required": False,
    "description": (
        "Passed on to every service and echoed on every answer. Any value is accepted; one that is"
        " not 1-128 of A-Z a-z 0-9 . _ - is replaced by an id the gateway makes up, as is a missing one."
    ),
    "schema": {"type": "string"},
}


def _json(model: str) -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": _REF.format(model=model)}}}


@cache
def document() -> dict[str, Any]:
    _, schemas = models_json_schema(
        [(model, "serialization") for model in (Order, OrderPage, ProblemDetails)]
        + [(PlaceOrderRequest, "validation")],
        ref_template=_REF,
    )
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Dozen public API",
            "version": "1.0.0",
            "description": "Place and read orders. Every error is an RFC 9457 problem document.",
        },
        "servers": [{"url": "/"}],
        "security": [{"bearerAuth": []}],
        "paths": {
            "/api/v1/orders": {
                "post": {
                    "operationId": "placeOrder",
                    "summary": "Place an order for the token's customer",
                    "parameters": [
                        {
                            "name": "Idempotency-Key",
                            "in": "header",
                            "required": True,
                            "description": "Repeat it to retry safely: the same key and body answer the first order.",
                            "schema": {"type": "string", "pattern": IDEMPOTENCY_KEY_PATTERN},
                        },
                        _REQUEST_ID,
                    ],
                    "requestBody": {"required": True, "content": _json("PlaceOrderRequest")},
                    "responses": {
                        "201": {
                            "description": "Accepted; or the original order, when the key was used before.",
                            "headers": {
                                "Location": {"schema": {"type": "string"}},
                                "Idempotent-Replayed": {
                                    "schema": {"type": "string", "enum": ["true"]},
                                    "description": "Present when this answers an earlier request with the same key.",
                                },
                            },
                            "content": _json("Order"),
                        },
                        "400": _problem("Missing Idempotency-Key, or a body that is not JSON."),
                        **_UNAUTHORIZED,
                        "413": _problem("The body is too large."),
                        "415": _problem("The body is not application/json."),
                        "422": _problem("Invalid fields, or the key was used for a different order."),
                        **_UPSTREAM_FAILURES,
                    },
                },
                "get": {
                    "operationId": "listOrders",
                    "summary": "The token's customer's orders, newest first",
                    "parameters": [
                        {
                            "name": "limit",
                            "in": "query",
                            "required": False,
                            "schema": {"type": "integer", "minimum": 1, "maximum": 100, "default": 20},
                        },
                        {
                            "name": "after",
                            "in": "query",
                            "required": False,
                            "description": "The next_cursor of the previous page.",
                            "schema": {"type": "string"},
                        },
                        _REQUEST_ID,
                    ],
                    "responses": {
                        "200": {"description": "A page of orders.", "content": _json("OrderPage")},
                        **_UNAUTHORIZED,
                        "422": _problem("Invalid limit or cursor."),
                        **_UPSTREAM_FAILURES,
                    },
                },
            },
            "/api/v1/order-updates": {
                "get": {
                    "operationId": "followOrders",
                    "summary": "The token's customer's orders as they move on, live (Server-Sent Events)",
                    "description": (
                        "Each `order` event's data is an Order as it now stands, sent when it is published and"
                        " when it is notified. A `resync` event (data `{}`) says updates may have been missed:"
                        " list the orders again. The stream ends after a few minutes; open another."
                    ),
                    "parameters": [_REQUEST_ID],
                    "responses": {
                        "200": {
                            "description": "The stream.",
                            "content": {"text/event-stream": {"schema": {"type": "string"}}},
                        },
                        **_UNAUTHORIZED,
                        **_UPSTREAM_FAILURES,
                    },
                }
            },
            "/api/v1/orders/{order_id}": {
                "get": {
                    "operationId": "getOrder",
                    "summary": "One of the token's customer's orders",
                    "parameters": [
                        {"name": "order_id", "in": "path", "required": True, "schema": {"type": "string"}},
                        _REQUEST_ID,
                    ],
                    "responses": {
                        "200": {"description": "The order.", "content": _json("Order")},
                        **_UNAUTHORIZED,
                        "404": _problem("No such order for this customer."),
                        **_UPSTREAM_FAILURES,
                    },
                }
            },
        },
        "components": {
            "schemas": schemas["$defs"],
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
        },
    }
