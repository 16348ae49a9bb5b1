"""A minimal process built the way every Dozen process is, for lifecycle tests."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp import web
from pydantic import Field

from shared.config import Port, ServiceSettings, load_settings
from shared.logging import configure_logging
from shared.web import create_base_app, run
from shared.web.supervision import supervise

log = logging.getLogger("sample")


class SampleSettings(ServiceSettings, env_prefix="SAMPLE_"):
    service_name = "sample"

    port: Port
    # Probes and metrics apart from /slow, as an API process has them.
    management_port: Port | None = None
    work_seconds: float = Field(1.0, ge=0)
    # The loop it runs beside its requests breaks at once (a bug, as a supervised loop meets one).
    loop_breaks: bool = False


SAMPLE_SETTINGS = web.AppKey("sample_settings", SampleSettings)


async def slow(request: web.Request) -> web.Response:
    log.info("slow request started")
    # Simulated work that is in flight when SIGTERM arrives.
    await asyncio.sleep(request.app[SAMPLE_SETTINGS].work_seconds)
    return web.json_response({"finished": True})


@asynccontextmanager
async def resource(app: web.Application) -> AsyncIterator[None]:
    log.info("resource opened")
    yield
    log.info("resource closed")


async def loop(breaks: bool) -> None:
    if not breaks:
        await asyncio.Event().wait()  # runs until cancelled at shutdown
    raise RuntimeError("the loop broke")


@asynccontextmanager
async def background_loop(app: web.Application) -> AsyncIterator[None]:
    task = supervise(app, asyncio.create_task(loop(app[SAMPLE_SETTINGS].loop_breaks), name="sample-loop"))
    yield
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


def create_app(settings: SampleSettings) -> web.Application:
    app = create_base_app(settings)
    app[SAMPLE_SETTINGS] = settings
    app.router.add_get("/slow", slow)
    app.cleanup_ctx.append(resource)
    app.cleanup_ctx.append(background_loop)
    return app


def main() -> None:
    settings = load_settings(SampleSettings)
    configure_logging(service=settings.service_name, release=settings.release_id, level=settings.log_level)
    run(
        create_app(settings),
        port=settings.port,
        management_port=settings.management_port,
        settings=settings,
        host="127.0.0.1",
    )


if __name__ == "__main__":
    main()
