"""The fault proxy the end-to-end suite puts between processes: it must forward faithfully,
delay, reset, and route only to ready instances — or the faults it reports are its own."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from harness.proxy import Endpoint, FaultProxy, ReadyInstances, fixed
from shared.testing import eventually, free_port


class Instance:
    """A tiny HTTP server whose readiness the test flips, and which says who answered."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.ready = True
        self.port = free_port()

    async def readyz(self, request: web.Request) -> web.Response:
        return web.Response(status=200 if self.ready else 503)

    async def who(self, request: web.Request) -> web.Response:
        return web.Response(text=self.name)

    async def echo(self, request: web.Request) -> web.Response:
        return web.Response(body=await request.read())


@pytest.fixture
async def instances() -> AsyncIterator[list[Instance]]:
    made = [Instance("one"), Instance("two")]
    runners = []
    for instance in made:
        app = web.Application()
        app.router.add_get("/readyz", instance.readyz)
        app.router.add_get("/who", instance.who)
        app.router.add_post("/echo", instance.echo)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", instance.port).start()
        runners.append(runner)
    yield made
    for runner in runners:
        await runner.cleanup()


def fresh_session() -> aiohttp.ClientSession:
    # One connection per request, so that each request is a new choice of upstream.
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True))


async def test_forwards_both_ways_unchanged(instances: list[Instance]) -> None:
    payload = bytes(range(256)) * 1024  # larger than one chunk
    async with (
        FaultProxy(fixed(f"http://127.0.0.1:{instances[0].port}")) as proxy,
        fresh_session() as http,
        http.post(f"http://127.0.0.1:{proxy.port}/echo", data=payload) as answer,
    ):
        assert await answer.read() == payload


async def test_latency_delays_every_round_trip(instances: list[Instance]) -> None:
    async with FaultProxy(fixed(f"http://127.0.0.1:{instances[0].port}")) as proxy, fresh_session() as http:
        proxy.latency_seconds = 0.2
        started = time.monotonic()
        async with http.get(f"http://127.0.0.1:{proxy.port}/who") as answer:
            assert await answer.text() == "one"
        # A lower bound, which only a proxy that did not delay can miss.
        assert time.monotonic() - started >= 0.4


async def test_reset_cuts_open_connections_and_new_ones_still_work(instances: list[Instance]) -> None:
    async with FaultProxy(fixed(f"http://127.0.0.1:{instances[0].port}")) as proxy:
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        writer.write(b"GET /who HTTP/1.1\r\nHost: x\r\n\r\n")
        assert b"one" in await reader.readuntil(b"one")

        assert await eventually(proxy.reset_all, description="an open connection to reset") == 1

        with pytest.raises(ConnectionResetError):
            await reader.read(1)
        writer.close()
        async with fresh_session() as http, http.get(f"http://127.0.0.1:{proxy.port}/who") as answer:
            assert answer.status == 200


async def test_only_ready_instances_get_new_connections(instances: list[Instance]) -> None:
    one, two = instances
    async with (
        ReadyInstances([Endpoint(one.port, one.port), Endpoint(two.port, two.port)], interval_seconds=0.05) as ready,
        FaultProxy(ready.choose) as proxy,
        fresh_session() as http,
    ):

        async def answered_by() -> set[str]:
            names = set()
            for _ in range(6):
                async with http.get(f"http://127.0.0.1:{proxy.port}/who") as answer:
                    names.add(await answer.text())
            return names

        assert await answered_by() == {"one", "two"}
        one.ready = False
        await eventually(lambda: ready.ready_ports == [two.port], description="only two ready")
        assert await answered_by() == {"two"}

        two.ready = False
        await eventually(lambda: ready.ready_ports == [], description="no instance ready")
        with pytest.raises(aiohttp.ClientConnectionError):
            await answered_by()


async def test_a_blackhole_holds_open_and_new_connections_until_it_heals_then_delivers(
    instances: list[Instance],
) -> None:
    async with FaultProxy(fixed(f"http://127.0.0.1:{instances[0].port}")) as proxy, fresh_session() as http:
        open_reader, open_writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        async with proxy.blackholed():
            open_writer.write(b"GET /who HTTP/1.1\r\nHost: x\r\n\r\n")
            on_the_open = asyncio.create_task(open_reader.readuntil(b"one"))
            on_a_new = asyncio.create_task(http.get(f"http://127.0.0.1:{proxy.port}/who"))
            # Nothing may come back while the network drops everything: a second is plenty
            # for an answer from loopback, so one within it means no blackhole.
            done, _ = await asyncio.wait({on_the_open, on_a_new}, timeout=1)
            assert done == set()
        assert b"one" in await asyncio.wait_for(on_the_open, 10)
        answer = await asyncio.wait_for(on_a_new, 10)
        assert await answer.text() == "one"
        open_writer.close()


async def test_down_resets_open_connections_and_refuses_new_ones_until_it_is_up(instances: list[Instance]) -> None:
    async with FaultProxy(fixed(f"http://127.0.0.1:{instances[0].port}")) as proxy, fresh_session() as http:
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        writer.write(b"GET /who HTTP/1.1\r\nHost: x\r\n\r\n")
        assert b"one" in await reader.readuntil(b"one")
        async with proxy.down():
            with pytest.raises(ConnectionResetError):
                await asyncio.wait_for(reader.read(1), 10)
            with pytest.raises(aiohttp.ClientConnectionError):
                await http.get(f"http://127.0.0.1:{proxy.port}/who")
        writer.close()
        async with http.get(f"http://127.0.0.1:{proxy.port}/who") as answer:
            assert await answer.text() == "one"
