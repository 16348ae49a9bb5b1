"""The smallest aiohttp JSON endpoint: the ceiling of one Python HTTP process here.

python -m benchmarks.hello PORT
"""

from __future__ import annotations

import sys

from aiohttp import web


async def hello(_: web.Request) -> web.Response:
    return web.json_response({"hello": "world"})


def main() -> None:
    app = web.Application()
    app.router.add_get("/", hello)
    app.router.add_get("/readyz", hello)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)


if __name__ == "__main__":
    main()
