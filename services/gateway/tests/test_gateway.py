"""The public API: authentication, validation, forwarding and upstream failures."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import jwt
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from openapi_spec_validator import validate

from gateway.app import create_app
from gateway.openapi import document

from .support import ORDERS_TOKEN, SECRET, OrdersStandIn, bearer, call, crafted_token, settings, valid_token

ORDERS = "/api/v1/orders"
ORDER = "/api/v1/orders/{order_id}"
BODY = {"currency": "EUR", "items": [{"sku": "BOOK-1", "quantity": 2, "unit_price_cents": 1250}]}

Client = TestClient[web.Request, web.Application]


@pytest.fixture
async def client(orders: tuple[OrdersStandIn, str]) -> AsyncIterator[Client]:
    async with TestClient(TestServer(create_app(settings(orders[1])))) as test_client:
        yield test_client


def headers(subject: str = "alice", key: str | None = "key-1", **extra: str) -> dict[str, str]:
    values = bearer(valid_token(subject)) | extra
    return values | ({"Idempotency-Key": key} if key else {})


async def place(client: Client, subject: str = "alice", key: str = "key-1") -> dict[str, Any]:
    status, _, order = await call(client, "POST", ORDERS, ORDERS, json=BODY, headers=headers(subject, key))
    assert status == 201
    return order  # type: ignore[no-any-return]


def test_the_openapi_document_is_valid_openapi_3_1() -> None:
    validate(document())
    assert document()["openapi"] == "3.1.0"


async def test_the_document_is_served(client: Client) -> None:
    response = await client.get("/api/openapi.json")

    assert response.status == 200
    assert await response.json() == document()


async def test_placing_an_order_forwards_it_for_the_tokens_customer(
    client: Client, orders: tuple[OrdersStandIn, str]
) -> None:
    status, answer_headers, order = await call(
        client, "POST", ORDERS, ORDERS, json=BODY, headers=headers("alice", "key-1", **{"X-Request-Id": "req-42"})
    )

    assert status == 201
    assert order["customer_id"] == "alice"
    assert "internal_note" not in order
    assert answer_headers["Location"] == f"/api/v1/orders/{order['id']}"
    assert answer_headers["X-Request-Id"] == "req-42"
    [forwarded] = orders[0].seen
    assert forwarded.headers["Idempotency-Key"] == "key-1"
    assert forwarded.headers["X-Request-Id"] == "req-42"


async def test_a_replay_is_marked_as_one(client: Client) -> None:
    first = await place(client)

    status, answer_headers, again = await call(client, "POST", ORDERS, ORDERS, json=BODY, headers=headers())

    assert status == 201
    assert answer_headers["Idempotent-Replayed"] == "true"
    assert again == first


async def test_a_request_id_is_made_up_when_absent_or_unsafe(client: Client) -> None:
    unsafe = await client.get("/api/openapi.json", headers={"X-Request-Id": "<script>" + "x" * 200})
    absent = await client.get("/api/openapi.json")

    for response in (unsafe, absent):
        assert len(response.headers["X-Request-Id"]) == 32
    assert unsafe.headers["X-Request-Id"] != absent.headers["X-Request-Id"]


async def test_the_customer_cannot_be_chosen_in_the_body(client: Client) -> None:
    status, _, problem = await call(
        client, "POST", ORDERS, ORDERS, json=BODY | {"customer_id": "bob"}, headers=headers()
    )

    assert status == 422
    assert {"field": "customer_id", "message": "unknown field"} in problem["errors"]


async def test_invalid_fields_are_named(client: Client, orders: tuple[OrdersStandIn, str]) -> None:
    body = {"currency": "eur", "items": [{"sku": "", "quantity": 0, "unit_price_cents": 1}]}

    status, _, problem = await call(client, "POST", ORDERS, ORDERS, json=body, headers=headers())

    assert status == 422
    assert sorted(error["field"] for error in problem["errors"]) == ["currency", "items.0.quantity", "items.0.sku"]
    assert orders[0].seen == []


async def test_the_idempotency_key_is_required(client: Client) -> None:
    status, _, problem = await call(client, "POST", ORDERS, ORDERS, json=BODY, headers=headers(key=None))

    assert status == 400
    assert "Idempotency-Key" in problem["detail"]


@pytest.mark.parametrize("key", ["k" * 256, "ключ-1", "tab\tinside"])
async def test_an_idempotency_key_outside_the_documented_form_is_400(client: Client, key: str) -> None:
    answer = await client.post(ORDERS, json=BODY, headers=headers() | {"Idempotency-Key": key})
    assert answer.status == 400
    assert "Idempotency-Key" in (await answer.json())["detail"]


async def test_whole_numbers_written_as_floats_are_integers_fractions_and_strings_are_not(client: Client) -> None:
    line = {"sku": "BOOK-1", "quantity": 2.0, "unit_price_cents": 1250.0}
    status, _, order = await call(
        client, "POST", ORDERS, ORDERS, json={"currency": "EUR", "items": [line]}, headers=headers(key="k-float")
    )
    assert status == 201
    assert order["items"][0] == {"sku": "BOOK-1", "quantity": 2, "unit_price_cents": 1250}
    for bad in ({"quantity": 2.5}, {"quantity": "2"}):
        answer = await client.post(
            ORDERS, json={"currency": "EUR", "items": [line | bad]}, headers=headers(key=f"k-{bad}")
        )
        assert answer.status == 422
        assert (await answer.json())["errors"][0]["field"] == "items.0.quantity"


async def test_a_customer_sees_only_their_own_orders(client: Client) -> None:
    alices = await place(client, "alice", "a-1")
    await place(client, "bob", "b-1")

    status, _, mine = await call(client, "GET", f"{ORDERS}/{alices['id']}", ORDER, headers=headers("alice"))
    status_other, _, problem = await call(client, "GET", f"{ORDERS}/{alices['id']}", ORDER, headers=headers("bob"))
    _, _, page = await call(client, "GET", ORDERS, ORDERS, headers=headers("bob"))

    assert status == 200
    assert mine == alices
    assert status_other == 404
    assert problem["detail"] == "No such order."
    assert [order["customer_id"] for order in page["items"]] == ["bob"]


async def test_an_unknown_or_malformed_order_id_is_404(client: Client) -> None:
    unknown, _, _ = await call(
        client, "GET", f"{ORDERS}/00000000-0000-0000-0000-000000000000", ORDER, headers=headers()
    )
    malformed, _, _ = await call(client, "GET", f"{ORDERS}/..%2F..%2Fadmin", ORDER, headers=headers())

    assert unknown == 404
    assert malformed == 404


async def test_upstream_validation_problems_are_relayed(client: Client) -> None:
    status, _, problem = await call(client, "GET", f"{ORDERS}?limit=0", ORDERS, headers=headers())

    assert status == 422
    assert problem["errors"] == [{"field": "limit", "message": "x"}]


def _bearer(token: str) -> str:
    return f"Bearer {token}"


def _expired() -> str:
    now = int(time.time())
    return _bearer(crafted_token("alice", iat=now - 7200, exp=now - 3600))


def _unsigned() -> str:
    claims = {"sub": "alice", "iss": "dozen", "aud": "dozen-api", "exp": int(time.time()) + 60}
    return _bearer(jwt.encode(claims, None, algorithm="none", headers={"typ": "at+jwt"}))


# Each: the Authorization header (None: absent), and what the client is told.
BAD_CREDENTIALS: dict[str, tuple[Callable[[], str | None], str]] = {
    "missing": (lambda: None, "A bearer token is required."),
    "basic-auth": (lambda: "Basic YWxpY2U6cGFzcw==", "A bearer token is required."),
    "not-a-jwt": (lambda: "Bearer not-a-jwt", "the token is not valid"),
    "expired": (_expired, "the token has expired"),
    "wrong-key": (lambda: _bearer(crafted_token("alice", secret=SECRET[::-1])), "the token is not valid"),
    "alg-none": (_unsigned, "the token is not valid"),
    "alg-confusion": (lambda: _bearer(crafted_token("alice", algorithm="HS512")), "the token is not valid"),
    "wrong-issuer": (lambda: _bearer(crafted_token("alice", iss="someone-else")), "the token is not valid"),
    "wrong-audience": (lambda: _bearer(crafted_token("alice", aud="another-api")), "the token is not valid"),
    "no-expiry": (lambda: _bearer(crafted_token("alice", exp=None)), "the token is not valid"),
    "wrong-type": (lambda: _bearer(crafted_token("alice", header={"typ": "JWT"})), "the token is not valid"),
    "unsafe-subject": (lambda: _bearer(crafted_token("alice@evil, bob")), "the token is not valid"),
}


@pytest.mark.parametrize("case", BAD_CREDENTIALS)
async def test_bad_credentials_are_401_with_a_bearer_challenge(
    client: Client, orders: tuple[OrdersStandIn, str], case: str
) -> None:
    make_header, detail = BAD_CREDENTIALS[case]
    authorization = make_header()
    request_headers = {"Idempotency-Key": "k"} | ({"Authorization": authorization} if authorization else {})

    status, answer_headers, problem = await call(client, "POST", ORDERS, ORDERS, json=BODY, headers=request_headers)

    assert status == 401
    assert answer_headers["WWW-Authenticate"].startswith('Bearer realm="dozen"')
    assert problem["detail"] == detail
    assert orders[0].seen == []


@pytest.mark.parametrize(
    ("failure", "status"),
    [("crash", 502), ("unavailable", 503), ("slow", 504), ("garbage", 502), ("wrong-shape", 502)],
)
async def test_upstream_failures_become_problems_without_internals(
    client: Client, orders: tuple[OrdersStandIn, str], failure: str, status: int
) -> None:
    orders[0].failure = failure

    answered, answer_headers, problem = await call(client, "POST", ORDERS, ORDERS, json=BODY, headers=headers())

    assert answered == status
    assert "db-internal" not in str(problem)
    assert "Traceback" not in str(problem)
    if status == 503:
        assert answer_headers["Retry-After"] == "1"


async def test_a_connection_lost_under_an_order_is_retried_once_under_the_same_key(
    client: Client, orders: tuple[OrdersStandIn, str]
) -> None:
    stand_in = orders[0]
    stand_in.failure = "drop-after-commit"

    status, answer_headers, order = await call(client, "POST", ORDERS, ORDERS, json=BODY, headers=headers())

    assert status == 201
    # The retry found the order the lost answer was for: one order, not two.
    assert answer_headers["Idempotent-Replayed"] == "true"
    assert len(stand_in.seen) == 2
    assert list(stand_in.orders) == [order["id"]]


async def test_an_unreachable_upstream_is_503(orders: tuple[OrdersStandIn, str]) -> None:
    async with TestClient(TestServer(create_app(settings("http://127.0.0.1:1")))) as unreachable:
        status, answer_headers, problem = await call(unreachable, "POST", ORDERS, ORDERS, json=BODY, headers=headers())

    assert status == 503
    assert answer_headers["Retry-After"] == "1"
    assert "127.0.0.1" not in str(problem)


async def test_a_gateway_whose_credential_orders_refuses_answers_502_and_says_why_in_its_log(
    orders: tuple[OrdersStandIn, str], caplog: pytest.LogCaptureFixture
) -> None:
    stand_in, url = orders
    wrong = settings(url, orders_token="another-credential-thirty-two-bytes-long")
    async with TestClient(TestServer(create_app(wrong))) as misconfigured:
        status, _, problem = await call(misconfigured, "POST", ORDERS, ORDERS, json=BODY, headers=headers())

    assert status == 502
    assert "credential" not in str(problem)
    assert stand_in.orders == {}
    assert "orders refused the gateway's credential" in caplog.messages


def test_the_secrets_are_never_in_the_settings_repr() -> None:
    assert ORDERS_TOKEN not in repr(settings("http://orders"))
    assert SECRET not in repr(settings("http://orders"))
