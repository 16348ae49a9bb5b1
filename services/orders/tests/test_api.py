"""The orders HTTP API against a real PostgreSQL."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import aiohttp
import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from orders.app import create_app
from orders.models import PlaceOrder
from orders.repository import Placement, place_orders
from orders.settings import WebSettings
from shared.testing import eventually, execute, fetchval
from shared.web import PROBLEM_CONTENT_TYPE

from .support import API_TOKEN, AS_THE_GATEWAY, order_body

Client = TestClient[web.Request, web.Application]


@pytest.fixture
async def client(orders_database_url: str) -> AsyncIterator[Client]:
    # Room for the fifty concurrent duplicates below; the bound itself is tested on its own.
    settings = WebSettings(
        database_url=orders_database_url,
        port=1,
        management_port=2,
        api_token=API_TOKEN,
        max_in_flight=64,
        db_pool_max_size=10,
    )
    async with TestClient(TestServer(create_app(settings)), headers=AS_THE_GATEWAY) as test_client:
        yield test_client


async def post_order(client: Client, body: object, key: str | None = "key-1") -> tuple[int, dict[str, str], object]:
    headers = {"Idempotency-Key": key} if key is not None else {}
    response = await client.post("/orders", json=body, headers=headers)
    return response.status, dict(response.headers), await response.json()


async def test_placing_an_order_stores_it_with_its_event(client: Client, orders_database_url: str) -> None:
    status, headers, order = await post_order(client, order_body())

    assert status == 201
    assert isinstance(order, dict)
    assert headers["Location"] == f"/orders/{order['id']}"
    assert "Idempotent-Replayed" not in headers
    assert order["status"] == "accepted"
    assert order["total_cents"] == 2500
    assert order["published_at"] is None
    assert order["notified_at"] is None
    payload = json.loads(await fetchval(orders_database_url, "SELECT payload::text FROM outbox"))
    assert payload["type"] == "dozen.order.created.v1"
    assert payload["subject"] == order["id"]
    assert payload["data"]["order_id"] == order["id"]
    assert payload["data"]["total_cents"] == 2500


async def test_same_key_and_body_replays_the_original_without_a_second_order(
    client: Client, orders_database_url: str
) -> None:
    _, _, first = await post_order(client, order_body())

    status, headers, again = await post_order(client, order_body())

    assert status == 201
    assert headers["Idempotent-Replayed"] == "true"
    assert again == first
    assert await fetchval(orders_database_url, "SELECT count(*) FROM orders") == 1
    assert await fetchval(orders_database_url, "SELECT count(*) FROM outbox") == 1


async def test_same_key_with_another_body_is_refused(client: Client, orders_database_url: str) -> None:
    await post_order(client, order_body(quantity=1))

    status, headers, problem = await post_order(client, order_body(quantity=5))

    assert status == 422
    assert headers["Content-Type"].startswith(PROBLEM_CONTENT_TYPE)
    assert isinstance(problem, dict)
    assert "already used for a different order" in problem["detail"]
    assert await fetchval(orders_database_url, "SELECT count(*) FROM orders") == 1


async def test_same_key_from_another_customer_is_another_order(client: Client, orders_database_url: str) -> None:
    await post_order(client, order_body("alice"))

    status, headers, _ = await post_order(client, order_body("bob"))

    assert status == 201
    assert "Idempotent-Replayed" not in headers
    assert await fetchval(orders_database_url, "SELECT count(*) FROM orders") == 2


async def test_fifty_concurrent_duplicates_make_exactly_one_order_and_one_event(
    client: Client, orders_database_url: str
) -> None:
    results = await asyncio.gather(*(post_order(client, order_body(), key="same-key") for _ in range(50)))

    assert {status for status, _, _ in results} == {201}
    assert len({json.dumps(order, sort_keys=True) for _, _, order in results}) == 1
    fresh = [headers for _, headers, _ in results if "Idempotent-Replayed" not in headers]
    assert len(fresh) == 1
    assert await fetchval(orders_database_url, "SELECT count(*) FROM orders") == 1
    assert await fetchval(orders_database_url, "SELECT count(*) FROM outbox") == 1


async def test_order_and_outbox_row_are_atomic(client: Client, orders_database_url: str) -> None:
    # A real failure inside the transaction, after the order row was written.
    await execute(
        orders_database_url,
        """
        CREATE FUNCTION refuse_outbox() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN RAISE EXCEPTION 'injected failure'; END; $$;
        CREATE TRIGGER refuse_outbox BEFORE INSERT ON outbox FOR EACH ROW EXECUTE FUNCTION refuse_outbox();
        """,
    )

    status, _, problem = await post_order(client, order_body())

    assert status == 500
    assert isinstance(problem, dict)
    assert "injected" not in json.dumps(problem)
    assert await fetchval(orders_database_url, "SELECT count(*) FROM orders") == 0
    assert await fetchval(orders_database_url, "SELECT count(*) FROM outbox") == 0


async def test_an_order_the_database_refuses_fails_alone_though_placed_in_one_batch_with_others(
    client: Client, orders_database_url: str
) -> None:
    # A failure the database raises for one order only: the statement placing its batch fails.
    await execute(
        orders_database_url,
        """
        CREATE FUNCTION refuse_mallory() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN IF NEW.customer_id = 'mallory' THEN RAISE EXCEPTION 'injected failure'; END IF; RETURN NEW; END; $$;
        CREATE TRIGGER refuse_mallory BEFORE INSERT ON orders FOR EACH ROW EXECUTE FUNCTION refuse_mallory();
        """,
    )
    customers = ["alice", "mallory", "bob"]
    pool = await asyncpg.create_pool(orders_database_url, min_size=1, max_size=1)
    try:
        placed = await place_orders(
            pool,
            [
                Placement(PlaceOrder.model_validate_json(json.dumps(order_body(customer))), f"key-{customer}", {})
                for customer in customers
            ],
            event_source="/test",
        )
    finally:
        await pool.close()

    assert [type(outcome).__name__ for outcome in placed] == ["Placed", "RaiseError", "Placed"]
    assert await fetchval(orders_database_url, "SELECT count(*) FROM orders") == 2
    assert await fetchval(orders_database_url, "SELECT count(*) FROM outbox") == 2
    # Through the API, the same: mallory's order fails, the others are placed.
    statuses = await asyncio.gather(*(post_order(client, order_body(customer), key="api") for customer in customers))
    assert [status for status, _, _ in statuses] == [201, 500, 201]


async def test_validation_names_each_bad_field_and_rejects_unknown_ones(client: Client) -> None:
    body = {
        "customer_id": "alice",
        "currency": "euro",
        "items": [{"sku": "BOOK-1", "quantity": 0, "unit_price_cents": "12"}],
        "coupon": "FREE",
    }

    status, headers, problem = await post_order(client, body)

    assert status == 422
    assert headers["Content-Type"].startswith(PROBLEM_CONTENT_TYPE)
    assert isinstance(problem, dict)
    assert sorted(error["field"] for error in problem["errors"]) == [
        "coupon",
        "currency",
        "items.0.quantity",
        "items.0.unit_price_cents",
    ]
    assert {"field": "coupon", "message": "unknown field"} in problem["errors"]


@pytest.mark.parametrize(
    ("key", "detail"),
    [(None, "header is required"), ("x" * 256, "printable characters")],
)
async def test_idempotency_key_is_required_and_bounded(client: Client, key: str | None, detail: str) -> None:
    status, _, problem = await post_order(client, order_body(), key=key)

    assert status == 400
    assert isinstance(problem, dict)
    assert detail in problem["detail"]


async def test_malformed_json_is_400_and_wrong_media_type_415(client: Client) -> None:
    malformed = await client.post(
        "/orders", data=b'{"customer_id": ', headers={"Idempotency-Key": "k", "Content-Type": "application/json"}
    )
    form = await client.post("/orders", data={"customer_id": "alice"}, headers={"Idempotency-Key": "k"})

    assert malformed.status == 400
    assert form.status == 415


async def test_oversized_body_is_413(client: Client, orders_database_url: str) -> None:
    body = order_body()
    body["items"] = [{"sku": f"SKU-{n}", "quantity": 1, "unit_price_cents": 1} for n in range(5000)]

    status, headers, _ = await post_order(client, body)

    assert status == 413
    assert headers["Content-Type"].startswith(PROBLEM_CONTENT_TYPE)
    assert await fetchval(orders_database_url, "SELECT count(*) FROM orders") == 0


async def test_read_one_order_or_404(client: Client) -> None:
    _, _, placed = await post_order(client, order_body())
    assert isinstance(placed, dict)

    found = await client.get(f"/orders/{placed['id']}")
    missing = await client.get("/orders/00000000-0000-0000-0000-000000000000")
    malformed = await client.get("/orders/not-a-uuid")

    assert found.status == 200
    assert await found.json() == placed
    assert missing.status == 404
    assert malformed.status == 404


async def test_listing_pages_through_a_customers_orders_newest_first(client: Client) -> None:
    placed = []
    for number in range(5):
        _, _, order = await post_order(client, order_body("alice"), key=f"k-{number}")
        placed.append(order)
    await post_order(client, order_body("bob"), key="k-bob")

    seen, cursor = [], None
    while True:
        query = "customer_id=alice&limit=2" + (f"&after={cursor}" if cursor else "")
        response = await client.get(f"/orders?{query}")
        assert response.status == 200
        page = await response.json()
        seen.extend(page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break

    assert seen == list(reversed(placed))


@pytest.mark.parametrize(
    ("query", "fields"),
    [("", ["customer_id"]), ("customer_id=alice&limit=0", ["limit"]), ("customer_id=a&after=%%%", ["after"])],
)
async def test_listing_with_bad_parameters_names_them(client: Client, query: str, fields: list[str]) -> None:
    response = await client.get(f"/orders?{query}")

    assert response.status == 422
    assert [error["field"] for error in (await response.json())["errors"]] == fields


async def test_past_its_in_flight_bound_orders_refuses_at_once_and_a_same_key_retry_makes_one_order(
    orders_database_url: str,
) -> None:
    settings = WebSettings(
        database_url=orders_database_url, port=1, management_port=2, api_token=API_TOKEN, max_in_flight=1
    )
    async with TestClient(TestServer(create_app(settings)), headers=AS_THE_GATEWAY) as client:
        blocker = await asyncpg.connect(orders_database_url)
        try:
            # The one request it may work on waits at its INSERT, behind a lock held here.
            async with blocker.transaction():
                await blocker.execute("LOCK TABLE orders IN EXCLUSIVE MODE")
                first = asyncio.create_task(post_order(client, order_body(), key="first"))
                await eventually(lambda: lock_waiters(orders_database_url), description="the first order in flight")

                status, headers, problem = await post_order(client, order_body(), key="second")

                assert status == 503
                assert headers["Retry-After"] == "1"
                assert headers["Content-Type"].startswith(PROBLEM_CONTENT_TYPE)
                assert isinstance(problem, dict)
                assert problem["status"] == 503
            assert (await first)[0] == 201
        finally:
            await blocker.close()

        retried = [await post_order(client, order_body(), key="second") for _ in range(2)]

    assert [status for status, _, _ in retried] == [201, 201]
    assert retried[1][1]["Idempotent-Replayed"] == "true"
    assert await fetchval(orders_database_url, "SELECT count(*) FROM orders WHERE idempotency_key = 'second'") == 1
    assert await fetchval(orders_database_url, "SELECT count(*) FROM outbox") == 2


async def lock_waiters(database_url: str) -> bool:
    return bool(await fetchval(database_url, "SELECT count(*) FROM pg_locks WHERE NOT granted"))


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer wrong-token-of-the-same-shape-xxxx", f"bearer {API_TOKEN}", API_TOKEN, f"Bearer {API_TOKEN}x"],
)
async def test_only_a_caller_with_the_gateways_credential_may_place_or_read_orders(
    client: Client, orders_database_url: str, authorization: str | None
) -> None:
    stranger = {"Authorization": authorization} if authorization is not None else {}
    # A session of its own: the test client sends the gateway's credential with everything.
    async with aiohttp.ClientSession(headers=stranger) as http:
        placed = await http.post(client.make_url("/orders"), json=order_body(), headers={"Idempotency-Key": "k"})
        listed = await http.get(client.make_url("/orders"), params={"customer_id": "alice"})
        # Probes and scrapes carry no credential.
        probes = [(await http.get(client.make_url(path))).status for path in ("/healthz", "/readyz", "/metrics")]

    assert (placed.status, listed.status) == (401, 401)
    assert placed.content_type == PROBLEM_CONTENT_TYPE
    assert placed.headers["WWW-Authenticate"] == 'Bearer realm="dozen-orders"'
    assert await fetchval(orders_database_url, "SELECT count(*) FROM orders") == 0
    assert probes == [200, 200, 200]


async def test_an_order_keeps_the_trace_its_placement_started_and_an_untraced_one_has_none(
    client: Client, orders_database_url: str
) -> None:
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    traced = {"traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"}
    pool = await asyncpg.create_pool(orders_database_url, min_size=1, max_size=1)
    try:
        placed = await place_orders(
            pool,
            [
                Placement(PlaceOrder.model_validate_json(json.dumps(order_body("alice"))), "key-traced", traced),
                Placement(PlaceOrder.model_validate_json(json.dumps(order_body("alice"))), "key-untraced", {}),
            ],
            event_source="/test",
        )
    finally:
        await pool.close()
    ids = [outcome.order.id for outcome in placed if not isinstance(outcome, Exception)]
    read = [await (await client.get(f"/orders/{order_id}")).json() for order_id in ids]

    assert [order["trace_id"] for order in read] == [trace_id, None]
    outbox = await fetchval(orders_database_url, "SELECT traceparent FROM outbox WHERE aggregate_id = $1", ids[0])
    assert outbox == traced["traceparent"]
