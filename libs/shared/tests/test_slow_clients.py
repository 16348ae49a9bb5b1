"""Slow clients hold a socket for a bounded time, and never a place among the requests worked on."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from shared.config import ServiceSettings
from shared.testing import ServiceProcess, free_port
from shared.testing.slow_client import GIVE_UP_SECONDS, trickle_until_closed
from shared.web import PROBLEM_CONTENT_TYPE, FixedLimit, create_base_app

SAMPLE = str(Path(__file__).with_name("sample_service.py"))


class SlowClientSettings(ServiceSettings, env_prefix="SLOWCLIENTTEST_"):
    service_name = "slowclienttest"


async def echo_length(request: web.Request) -> web.Response:
    return web.json_response({"bytes": len(await request.read())})


async def test_a_request_head_sent_a_line_at_a_time_is_cut_off_after_the_idle_timeout() -> None:
    port = free_port()
    process = ServiceProcess(
        [sys.executable, SAMPLE], env={"SAMPLE_PORT": str(port), "SAMPLE_HTTP_IDLE_TIMEOUT_SECONDS": "1"}
    )
    await process.start()
    try:
        await process.wait_for_log("listening")
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: slow\r\n")
        # Closed without an answer: the request never began.
        assert await trickle_until_closed(reader, writer) == b""
        writer.close()
        # The process itself is unharmed.
        async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/healthz") as answer:
            assert answer.status == 200
    finally:
        await process.stop()


async def test_a_slow_body_is_answered_408_and_closed_without_holding_an_in_flight_place() -> None:
    app = create_base_app(SlowClientSettings(http_body_timeout_seconds=1), in_flight=FixedLimit(1))
    app.router.add_post("/echo", echo_length)
    async with TestClient(TestServer(app)) as client:
        assert client.port is not None
        reader, writer = await asyncio.open_connection("127.0.0.1", client.port)
        writer.write(b"POST /echo HTTP/1.1\r\nHost: slow\r\nContent-Type: text/plain\r\nContent-Length: 1000\r\n\r\n")
        writer.write(b"a few bytes of a thousand")
        await writer.drain()

        # While the body trickles in, the only in-flight place is free for others.
        whole = await client.post("/echo", data=b"x" * 10)
        assert whole.status == 200
        assert await whole.json() == {"bytes": 10}

        answer = await asyncio.wait_for(reader.read(), GIVE_UP_SECONDS)
        writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408 "), head
    assert f"Content-Type: {PROBLEM_CONTENT_TYPE}".encode() in head
    assert b'"status":408' in body.replace(b" ", b"")


async def test_a_body_past_the_bound_is_still_a_413_problem() -> None:
    app = create_base_app(SlowClientSettings(), max_body_bytes=1024)
    app.router.add_post("/echo", echo_length)
    async with TestClient(TestServer(app)) as client:
        answer = await client.post("/echo", data=b"x" * 2048)
        assert answer.status == 413
        assert answer.content_type == PROBLEM_CONTENT_TYPE
