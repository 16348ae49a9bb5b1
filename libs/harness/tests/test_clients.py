"""The harness's clients against a stand-in gateway: the open-loop generator keeps every attempt,
and a patient customer asks again, under the same key, only when told when to."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from harness.api import ORDERS_PATH, Customer
from harness.load import Answer, open_loop, running_open_loop


class StandIn:
    """Refuses the first ``refusals`` requests of each key with 503 (and ``retry_after``)."""

    def __init__(self, refusals: int, retry_after: str | None = "0") -> None:
        self.refusals, self.retry_after = refusals, retry_after
        self.keys: list[str] = []

    async def place(self, request: web.Request) -> web.Response:
        key = request.headers["Idempotency-Key"]
        self.keys.append(key)
        if self.keys.count(key) <= self.refusals:
            headers = {"Retry-After": self.retry_after} if self.retry_after is not None else {}
            return web.json_response({"title": "Service Unavailable"}, status=503, headers=headers)
        return web.json_response({"id": f"order-for-{key}", "status": "accepted"}, status=201)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def serving(stand_in: StandIn) -> TestServer:
    app = web.Application()
    app.router.add_post(ORDERS_PATH, stand_in.place)
    server = TestServer(app)
    await server.start_server()
    return server


async def test_a_patient_customer_asks_again_under_the_same_key_until_placed(http: aiohttp.ClientSession) -> None:
    stand_in = StandIn(refusals=2)
    server = await serving(stand_in)
    try:
        reply = await Customer(http, str(server.make_url("/")), "token").place(key="k-1")
    finally:
        await server.close()

    assert reply.order == {"id": "order-for-k-1", "status": "accepted"}
    assert stand_in.keys == ["k-1", "k-1", "k-1"]


@pytest.mark.parametrize(("patient", "retry_after"), [(False, "0"), (True, None)])
async def test_a_refusal_is_the_answer_when_impatient_or_not_told_when_to_return(
    http: aiohttp.ClientSession, patient: bool, retry_after: str | None
) -> None:
    stand_in = StandIn(refusals=1, retry_after=retry_after)
    server = await serving(stand_in)
    try:
        reply = await Customer(http, str(server.make_url("/")), "token").place(patient=patient)
    finally:
        await server.close()

    assert reply.status == 503
    assert len(stand_in.keys) == 1
    with pytest.raises(AssertionError, match="no order in the reply: HTTP 503"):
        _ = reply.order


async def test_the_open_loop_keeps_every_attempt_answered_or_not() -> None:
    async def send(index: int) -> Answer:
        if index % 3 == 2:
            raise ConnectionResetError
        await asyncio.sleep(0)
        return Answer(201 if index % 3 == 0 else 503, {"retry-after": "1"}, b"{}")

    run = await open_loop(send, rate=1000, seconds=0.03)

    assert sorted(attempt.index for attempt in run.attempts) == list(range(30))
    assert run.by_outcome() == {"ConnectionResetError": 10, "HTTP 201": 10, "HTTP 503": 10}
    assert {attempt.retry_after for attempt in run.answered(503)} == {"1"}


async def test_a_running_load_waits_for_the_answers_already_on_their_way_when_it_ends() -> None:
    release = asyncio.Event()
    sent = asyncio.Event()

    async def send(index: int) -> Answer:
        sent.set()
        await release.wait()
        return Answer(201, {}, b"{}")

    async with running_open_loop(send, rate=1000) as run:
        await sent.wait()
        # Later than leaving takes without waiting: the answers are still on their way then.
        asyncio.get_running_loop().call_later(0.05, release.set)
        started = len(run.attempts)

    assert started == 0, "no answer could have come before the release"
    assert run.attempts, "the answers on their way were dropped"
    assert run.by_outcome() == {"HTTP 201": len(run.attempts)}
