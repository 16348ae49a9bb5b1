"""RED metrics of HTTP, runtime metrics of the process, and build_info (factor V).

Labels are bounded: routes are templates ("/orders/{order_id}", or "unmatched"), methods
the handful aiohttp routes, status the class ("2xx" … "5xx").
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Collection
from contextlib import asynccontextmanager
from importlib import metadata

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from prometheus_client import Gauge, Histogram

from shared.web.access_log import route_template

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

HTTP_SERVER_DURATION = Histogram(
    "dozen_http_server_request_duration_seconds",
    "HTTP requests served, by route template, method and status class.",
    ["route", "method", "status"],
    buckets=LATENCY_BUCKETS,
)
HTTP_SERVER_IN_FLIGHT = Gauge("dozen_http_server_requests_in_flight", "HTTP requests being served now.")
HTTP_CLIENT_DURATION = Histogram(
    "dozen_http_client_request_duration_seconds",
    "HTTP requests made to other services, by peer, route template, method and outcome.",
    ["peer", "route", "method", "status"],
    buckets=LATENCY_BUCKETS,
)
EVENT_LOOP_LAG = Histogram(
    "dozen_event_loop_lag_seconds",
    "How late the event loop ran a timer: time the loop was busy and could not react.",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
)
BUILD_INFO = Gauge(
    "dozen_build_info", "Always 1; which build and release this process runs.", ["service", "version", "release"]
)

_LAG_PROBE_SECONDS = 0.25


def status_class(status: int) -> str:
    return f"{status // 100}xx"


def http_metrics(*, streaming_paths: Collection[str] = ()) -> Middleware:
    """Requests in flight and their durations (RED). A stream (shared.web.streams) is neither:
    it lasts minutes by design, and would swamp both; dozen_http_server_open_streams counts it."""

    @web.middleware
    async def measure(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path in streaming_paths:
            return await handler(request)
        started = time.perf_counter()
        HTTP_SERVER_IN_FLIGHT.inc()
        status = 500
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            status = exc.status
            raise
        else:
            status = response.status
            return response
        finally:
            HTTP_SERVER_IN_FLIGHT.dec()
            HTTP_SERVER_DURATION.labels(route_template(request), request.method, status_class(status)).observe(
                time.perf_counter() - started
            )

    return measure


def record_build(service: str, release: str) -> None:
    try:
        version = metadata.version(service)
    except metadata.PackageNotFoundError:
        version = "unknown"
    BUILD_INFO.labels(service, version, release).set(1)


@asynccontextmanager
async def event_loop_lag(app: web.Application) -> AsyncIterator[None]:
    """Samples how late a short timer fires, for the life of the app."""

    async def probe() -> None:
        loop = asyncio.get_running_loop()
        while True:
            expected = loop.time() + _LAG_PROBE_SECONDS
            await asyncio.sleep(_LAG_PROBE_SECONDS)
            EVENT_LOOP_LAG.observe(max(0.0, loop.time() - expected))

    task = asyncio.create_task(probe(), name="event-loop-lag")
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
