"""Past capacity, a fast 503 with Retry-After: the in-flight bound, the caller's deadline, the pool."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from shared.config import ServiceSettings
from shared.db import Pool, database_unavailable_middleware, postgres_pool
from shared.testing import eventually
from shared.web import PROBLEM_CONTENT_TYPE, FixedLimit, create_base_app
from shared.web.admission import TIMEOUT_HEADER, deadline, in_flight_limit
from shared.web.limit import WINDOW_SECONDS, AdaptiveLimit

DB = web.AppKey("db", Pool)
HELD = web.AppKey("held", asyncio.Event)
STARTED = web.AppKey("started", list[str])
# Longer than any answer here may take: an answer at all shows nothing waited this long.
CLIENT_TIMEOUT = aiohttp.ClientTimeout(total=20)


class AdmissionSettings(ServiceSettings, env_prefix="ADMISSIONTEST_"):
    service_name = "admissiontest"


async def held(request: web.Request) -> web.Response:
    request.app[STARTED].append(request.path)
    await request.app[HELD].wait()
    return web.json_response({"done": True})


async def read(request: web.Request) -> web.Response:
    return web.json_response(await request.app[DB].fetchval("SELECT 1"))


@pytest.fixture
async def client(database_url: str) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    app = create_base_app(AdmissionSettings())
    app.middlewares.extend([in_flight_limit(FixedLimit(2)), deadline, database_unavailable_middleware])
    # One connection, and a wait for it far longer than any test: only a deadline ends it early.
    app.cleanup_ctx.append(postgres_pool(DB, database_url, min_size=1, max_size=1, acquire_timeout_seconds=30))
    app[HELD] = asyncio.Event()
    app[STARTED] = []
    app.router.add_get("/held", held)
    app.router.add_get("/read", read)
    async with TestClient(TestServer(app), timeout=CLIENT_TIMEOUT) as test_client:
        yield test_client
        app[HELD].set()


async def refused(response: aiohttp.ClientResponse) -> None:
    assert response.status == 503
    assert response.headers["Retry-After"] == "1"
    assert response.content_type == PROBLEM_CONTENT_TYPE


async def test_past_the_in_flight_bound_a_request_is_refused_at_once_and_probes_still_answer(
    client: TestClient[web.Request, web.Application],
) -> None:
    holding = [asyncio.create_task(client.get("/held")) for _ in range(2)]
    await eventually(lambda: len(client.app[STARTED]) == 2, description="two requests in flight")

    await refused(await client.get("/read"))
    assert (await client.get("/healthz")).status == 200
    assert (await client.get("/readyz")).status == 200

    client.app[HELD].set()
    assert [response.status for response in await asyncio.gather(*holding)] == [200, 200]
    assert (await client.get("/read")).status == 200


async def test_a_request_waits_for_a_pooled_connection_no_longer_than_its_caller(
    client: TestClient[web.Request, web.Application],
) -> None:
    async with client.app[DB].acquire():  # the only connection, taken
        await refused(await client.get("/read", headers={TIMEOUT_HEADER: "300"}))
    assert (await client.get("/read", headers={TIMEOUT_HEADER: "300"})).status == 200


async def test_a_request_whose_caller_has_stopped_waiting_starts_no_work(
    client: TestClient[web.Request, web.Application],
) -> None:
    await refused(await client.get("/read", headers={TIMEOUT_HEADER: "0"}))
    assert (await client.get("/read", headers={TIMEOUT_HEADER: "soon"})).status == 400


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def window(limit: AdaptiveLimit, clock: Clock, *, seconds: float, in_flight: int) -> None:
    """One window of requests, each admitted with ``in_flight`` in flight and answered in ``seconds``."""
    for _ in range(5):
        limit.admitted(in_flight)
        limit.finished(seconds)
    clock.now += WINDOW_SECONDS
    limit.admitted(in_flight)
    limit.finished(seconds)


def test_the_adaptive_bound_admits_less_while_answers_are_slow_and_more_once_they_are_quick() -> None:
    clock = Clock()
    limit = AdaptiveLimit(64, target_seconds=0.05, minimum=4, clock=clock)

    window(limit, clock, seconds=0.2, in_flight=64)
    assert limit.value == 48
    for _ in range(20):
        window(limit, clock, seconds=0.2, in_flight=limit.value)
    assert limit.value == 4  # never below the minimum

    window(limit, clock, seconds=0.01, in_flight=1)
    assert limit.value == 4  # quick, but it was not the bound that refused anything: no need for more
    for _ in range(100):
        window(limit, clock, seconds=0.01, in_flight=limit.value)
    assert limit.value == 64  # never above the maximum


def test_the_adaptive_bound_is_not_cut_for_slow_answers_with_few_requests_in_flight() -> None:
    clock = Clock()
    limit = AdaptiveLimit(64, target_seconds=0.05, minimum=4, clock=clock)

    # A light load slowed down (the CPU taken by a neighbour): admitting fewer would not help it.
    for _ in range(20):
        window(limit, clock, seconds=0.5, in_flight=3)
    assert limit.value == 64

    # The same slowness with the requests piling up towards the bound: that is overload.
    window(limit, clock, seconds=0.5, in_flight=60)
    assert limit.value == 48
    window(limit, clock, seconds=0.5, in_flight=40)
    assert limit.value == 36
    # Cut only while the cut would bite: below the requests in flight.
    window(limit, clock, seconds=0.5, in_flight=20)
    assert limit.value == 36
