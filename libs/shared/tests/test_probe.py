"""The container healthcheck command against a real HTTP server."""

from __future__ import annotations

import asyncio

from aiohttp import web
from aiohttp.test_utils import TestServer

from shared.probe import main
from shared.testing import free_port


async def test_exits_0_on_2xx_and_1_on_an_error_status_or_no_listener() -> None:
    async def ready(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def not_ready(_: web.Request) -> web.Response:
        return web.Response(status=503)

    app = web.Application()
    app.router.add_get("/readyz", ready)
    app.router.add_get("/draining", not_ready)
    async with TestServer(app, host="127.0.0.1") as server:
        base = f"http://127.0.0.1:{server.port}"
        assert await asyncio.to_thread(main, [f"{base}/readyz"]) == 0
        assert await asyncio.to_thread(main, [f"{base}/draining"]) == 1
        assert await asyncio.to_thread(main, [f"{base}/missing"]) == 1
    assert await asyncio.to_thread(main, [f"http://127.0.0.1:{free_port()}/readyz"]) == 1


def test_refuses_anything_but_http_and_wrong_usage() -> None:
    assert main(["file:///etc/passwd"]) == 1
    assert main([]) == 2
