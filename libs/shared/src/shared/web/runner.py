"""Serve an app until SIGTERM or SIGINT, then shut down gracefully (factor IX).

The order matters: readiness goes red first and the listener stays open for
``shutdown_drain_seconds`` so load balancers stop sending traffic; then the listener
closes, in-flight requests get ``shutdown_timeout_seconds`` to finish, and finally
every ``cleanup_ctx`` resource closes (consumers stop, pools drain). Exit status 0.
"""

from __future__ import annotations

import asyncio
import logging
import signal

import uvloop
from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from shared.config import ServiceSettings
from shared.web.access_log import JsonAccessLogger
from shared.web.app import READINESS
from shared.web.management import management_apart
from shared.web.supervision import LIFECYCLE

log = logging.getLogger(__name__)

# Connections the kernel holds for the process before it accepts them. aiohttp's default, 128,
# overflowed in the burst of new connections clients open when a process stalls for a moment
# (`make bench` past capacity: 52 and 182 SYNs dropped in two runs, none at 2048), and a
# dropped SYN is sent again only a second later. 2048, as gunicorn and uvicorn have it (the
# kernel caps it at net.core.somaxconn).
LISTEN_BACKLOG = 2048


async def serve(
    app: web.Application,
    *,
    host: str,
    port: int,
    settings: ServiceSettings,
    management_port: int | None = None,
    access_log: type[AbstractAccessLogger] = JsonAccessLogger,
) -> None:
    """With ``management_port``, probes and metrics are served there and only there (shared.web.management)."""
    if management_port is not None:
        # Outermost: which port a request came in on decides before anything else runs.
        app.middlewares.insert(0, management_apart(management_port))
    runner = web.AppRunner(
        app,
        access_log_class=access_log,
        shutdown_timeout=settings.shutdown_timeout_seconds,
        handle_signals=False,
        # aiohttp's own default is an hour: it bounds idle connections and slow request heads alike.
        keepalive_timeout=settings.http_idle_timeout_seconds,
    )
    lifecycle = app[LIFECYCLE]
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, lifecycle.request_stop)
    try:
        await runner.setup()
        for listening_port in (port, management_port):
            if listening_port is not None:
                await web.TCPSite(runner, host, listening_port, backlog=LISTEN_BACKLOG).start()
        log.info("listening", extra={"host": host, "port": port, "management_port": management_port or port})
        await lifecycle.stop_requested.wait()
        log.info(
            "shutdown requested",
            extra={"drain_seconds": settings.shutdown_drain_seconds, "reason": lifecycle.failure or "signal"},
        )
        app[READINESS].begin_shutdown()
        # A deliberate pause, not synchronisation: the orchestrator needs time to see
        # readiness fail and take this instance out of rotation.
        await asyncio.sleep(settings.shutdown_drain_seconds)
    finally:
        await runner.cleanup()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
    log.info("stopped")


def run(
    app: web.Application,
    *,
    port: int,
    settings: ServiceSettings,
    management_port: int | None = None,
    host: str = "0.0.0.0",  # noqa: S104
    access_log: type[AbstractAccessLogger] = JsonAccessLogger,
) -> None:
    """Blocking entry for a process's main(): returns after a graceful shutdown."""
    try:
        # uvloop: the event loop and its transports in C, for every process type alike.
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(
                serve(
                    app,
                    host=host,
                    port=port,
                    settings=settings,
                    management_port=management_port,
                    access_log=access_log,
                )
            )
    except Exception:
        # One JSON line with the traceback instead of a bare one on stderr.
        log.exception("process failed")
        raise SystemExit(1) from None
    if app[LIFECYCLE].failure is not None:
        # Stopped gracefully, but because a loop it exists to run died: not a clean exit.
        raise SystemExit(1)
