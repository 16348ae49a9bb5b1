"""Where the pipeline's outputs go during a benchmark: traces (OTLP/HTTP) and mail (SMTP)."""

from __future__ import annotations

from aiohttp import web
from aiohttp.test_utils import TestServer


class TraceSink:
    """Accepts OTLP/HTTP exports without decoding them: a collector's work is not the app's
    cost, and decoding here would take CPU from the load generator."""

    def __init__(self) -> None:
        self.exports = 0
        self.bytes = 0
        app = web.Application()
        app.router.add_post("/v1/traces", self._accept)
        self.server = TestServer(app, host="127.0.0.1")

    async def _accept(self, request: web.Request) -> web.Response:
        self.exports += 1
        self.bytes += len(await request.read())
        return web.Response(body=b"", content_type="application/x-protobuf")

    @property
    def endpoint(self) -> str:
        return str(self.server.make_url("")).rstrip("/")
