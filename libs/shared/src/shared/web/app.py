"""The aiohttp application every process starts from, HTTP APIs and workers alike."""

from __future__ import annotations

from collections.abc import Callable, Collection
from contextlib import AbstractAsyncContextManager

from aiohttp import web
from prometheus_client.aiohttp import make_aiohttp_handler

from shared.config import ServiceSettings
from shared.web.access_log import QUIET_PATHS, remember_span_middleware
from shared.web.admission import in_flight_limit
from shared.web.body import read_body_within
from shared.web.limit import FixedLimit
from shared.web.metrics import event_loop_lag, http_metrics, record_build
from shared.web.problems import problem_middleware
from shared.web.readiness import Readiness
from shared.web.supervision import LIFECYCLE, Lifecycle

# One resource's whole life, for app.cleanup_ctx: opened at start-up, closed at shutdown.
CleanupContext = Callable[[web.Application], AbstractAsyncContextManager[None]]

READINESS = web.AppKey("readiness", Readiness)

# Large enough for any order Dozen accepts; anything bigger is refused with 413.
DEFAULT_MAX_BODY_BYTES = 64 * 1024


async def healthz(request: web.Request) -> web.Response:
    # Liveness touches no dependency: a database outage must not get every pod restarted.
    # Only the process's own state counts: a loop it runs for its purpose has died.
    failure = request.app[LIFECYCLE].failure
    if failure is not None:
        return web.json_response({"status": "failed", "reason": failure}, status=503)
    return web.json_response({"status": "ok"})


async def _stopping(app: web.Application) -> None:
    # However the app is shut down (serve(), a test's server): supervised loops end now on purpose.
    app[LIFECYCLE].request_stop()


async def readyz(request: web.Request) -> web.Response:
    ready, checks = await request.app[READINESS].evaluate()
    return web.json_response(
        {"status": "ready" if ready else "not ready", "checks": checks}, status=200 if ready else 503
    )


async def close_connections_while_draining(request: web.Request, response: web.StreamResponse) -> None:
    # A client holding a keep-alive connection to a draining instance would go on using it
    # (a TCP load balancer pins it here) until the listener closes it, racing its next
    # request against the close. "Connection: close" sends that client elsewhere at once.
    if request.app[READINESS].shutting_down:
        response.force_close()
        # aiohttp runs this hook after it wrote the Connection header: say it ourselves.
        response.headers["Connection"] = "close"


def create_base_app(
    settings: ServiceSettings,
    *,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    in_flight: FixedLimit | None = None,
    streaming_paths: Collection[str] = (),
) -> web.Application:
    """/healthz, /readyz and /metrics, problem+json errors; the caller adds routes and resources.

    With ``in_flight``, requests past that bound are refused at once (503), at the door: before
    the tracing middleware the instrumentation puts first, and before metrics. Only the
    reading of the body comes first (shared.web.body). ``streaming_paths`` answer with a
    stream that lasts minutes: they are bounded by their own slots (shared.web.streams), not
    counted in flight, where they would hold places and skew the latency the bound follows,
    nor in the request metrics, for the same reason.
    """
    app = web.Application(
        middlewares=[
            http_metrics(streaming_paths=frozenset(streaming_paths)),
            problem_middleware,
            remember_span_middleware,
        ],
        client_max_size=max_body_bytes,
    )
    if in_flight is not None:
        app.middlewares.insert(0, in_flight_limit(in_flight, exempt=QUIET_PATHS | frozenset(streaming_paths)))
    # Before admission: a slow body holds a socket, never an in-flight place.
    app.middlewares.insert(0, read_body_within(settings.http_body_timeout_seconds))
    app[READINESS] = Readiness(settings.readiness_timeout_seconds)
    app[LIFECYCLE] = Lifecycle()
    app.on_shutdown.append(_stopping)
    app.on_response_prepare.append(close_connections_while_draining)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", make_aiohttp_handler())
    app.cleanup_ctx.append(event_loop_lag)
    record_build(settings.service_name, settings.release_id)
    return app
