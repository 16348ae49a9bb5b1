"""Live order updates (GET /order-updates): the database's word, streamed to the order's customer only."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from uuid import UUID

import asyncpg
import pytest
from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient, TestServer

from orders.app import create_app
from orders.settings import WebSettings
from orders.updates import CHANNEL
from shared.testing import eventually, fetchval
from shared.web.streams import Event, read_events

from .support import API_TOKEN, AS_THE_GATEWAY, order_body

Client = TestClient[web.Request, web.Application]
# A bound against a hang, not a speed check: every wait below is for something already committed.
EVENT_TIMEOUT_SECONDS = 30.0


@pytest.fixture
async def client(orders_database_url: str) -> AsyncIterator[Client]:
    settings = WebSettings(
        database_url=orders_database_url, port=1, management_port=2, api_token=API_TOKEN, max_update_streams=2
    )
    async with TestClient(TestServer(create_app(settings)), headers=AS_THE_GATEWAY) as test_client:
        await _listening(orders_database_url)
        yield test_client


async def _listening(database_url: str) -> None:
    listen = f'LISTEN "{CHANNEL}"'
    await eventually(
        lambda: fetchval(
            database_url,
            "SELECT count(*) FROM pg_stat_activity WHERE query = $1 AND datname = current_database()",
            listen,
        ),
        description="orders web listening for order updates",
    )


async def _update(database_url: str, assignments: str, order_id: str) -> None:
    """What the relay (published) and the worker (notified) do to an order, in their own transaction."""
    connection = await asyncpg.connect(database_url)
    try:
        # The assignments are this module's own literals.
        await connection.execute(f"UPDATE orders SET {assignments} WHERE id = $1", UUID(order_id))  # noqa: S608
    finally:
        await connection.close()


async def _place(client: Client, customer_id: str, key: str) -> str:
    response = await client.post("/orders", json=order_body(customer_id), headers={"Idempotency-Key": key})
    assert response.status == 201
    order_id: str = (await response.json())["id"]
    return order_id


class Stream:
    """A stream's events as they come."""

    def __init__(self, response: ClientResponse) -> None:
        assert response.status == 200, response.status
        assert response.headers["Content-Type"] == "text/event-stream"
        self._events = read_events(response.content)

    async def next(self, *, skip_resync: bool = True) -> Event:
        while True:
            event = await asyncio.wait_for(anext(self._events), EVENT_TIMEOUT_SECONDS)
            if not (skip_resync and event[0] == "resync"):
                return event

    async def next_order(self) -> dict[str, object]:
        kind, data = await self.next()
        assert kind == "order"
        order: dict[str, object] = json.loads(data)
        return order


async def test_a_customers_stream_shows_each_order_as_it_is_published_then_notified(
    client: Client, orders_database_url: str
) -> None:
    async with client.get("/order-updates", params={"customer_id": "alice"}) as response:
        stream = Stream(response)
        order_id = await _place(client, "alice", "key-1")

        await _update(orders_database_url, "published_at = now()", order_id)
        published = await stream.next_order()
        await _update(orders_database_url, "status = 'notified', notified_at = now()", order_id)
        notified = await stream.next_order()

    assert (published["id"], published["status"], published["notified_at"]) == (order_id, "accepted", None)
    assert published["published_at"] is not None
    assert (notified["id"], notified["status"]) == (order_id, "notified")
    assert notified["notified_at"] is not None


async def test_a_stream_never_shows_another_customers_order(client: Client, orders_database_url: str) -> None:
    async with client.get("/order-updates", params={"customer_id": "bob"}) as response:
        stream = Stream(response)
        alices = await _place(client, "alice", "key-1")
        bobs = await _place(client, "bob", "key-1")

        # Alice's update commits first; Bob's stream must skip straight to his own.
        await _update(orders_database_url, "published_at = now()", alices)
        await _update(orders_database_url, "published_at = now()", bobs)
        first = await stream.next_order()

    assert first["id"] == bobs


async def test_a_stream_is_told_to_resync_when_updates_may_have_been_missed(
    client: Client, orders_database_url: str
) -> None:
    async with client.get("/order-updates", params={"customer_id": "alice"}) as response:
        stream = Stream(response)
        # The listener's connection dies; what was notified meanwhile is lost to it.
        terminated = await fetchval(
            orders_database_url,
            # This test's database only: the server is shared with whatever else runs.
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE query = $1 AND datname = current_database()",
            f'LISTEN "{CHANNEL}"',
        )
        assert terminated == 1
        event = await stream.next(skip_resync=False)

    assert event == ("resync", "{}")


async def test_past_its_stream_bound_orders_refuses_at_once_with_retry_after(client: Client) -> None:
    async with (
        client.get("/order-updates", params={"customer_id": "alice"}) as first,
        client.get("/order-updates", params={"customer_id": "bob"}) as second,
    ):
        Stream(first), Stream(second)
        refused = await client.get("/order-updates", params={"customer_id": "carol"})
        orders_still_answer = await client.get("/orders", params={"customer_id": "carol"})

    assert refused.status == 503
    assert refused.headers["Retry-After"] == "1"
    assert orders_still_answer.status == 200


async def test_a_stream_needs_a_customer(client: Client) -> None:
    response = await client.get("/order-updates")

    assert response.status == 422
