"""Admission control: past capacity, a fast refusal (503 with Retry-After), never a slow timeout.

Two bounds, each a middleware:
- ``in_flight_limit``: at most so many requests are worked on at once (a fixed bound, or one
  that follows latency: shared.web.limit); the next one is refused at once instead of queueing
  behind them (a queue past capacity only grows, and every request in it ends as a timeout).
  It stands at the door, before tracing and metrics, and answers with a problem document
  written once: past capacity, a refusal must cost next to nothing, or refusing is what the
  process spends its CPU on while the refusals grow slow.
- ``deadline``: the caller says how long it will wait (``X-Request-Timeout-Ms``, relative, so
  no two clocks need agree); no work starts once that time is spent, and every wait inside the
  request (a pooled connection, say) ends with it (``remaining_seconds``).
Probes and scrapes are never refused: an overloaded process is still alive, and still ready.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Collection
from contextvars import ContextVar

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from prometheus_client import Counter

from shared.web.access_log import QUIET_PATHS, REFUSED_KEY
from shared.web.limit import FixedLimit
from shared.web.problems import PROBLEM_CONTENT_TYPE, Problem, problem_json

log = logging.getLogger(__name__)

# How long the caller will wait for the answer, in milliseconds from when it sent the request.
TIMEOUT_HEADER = "X-Request-Timeout-Ms"
# What a refused client is told to wait before retrying (with the same Idempotency-Key).
RETRY_AFTER_SECONDS = 1

# Refusals are counted, and summed up in a warning at most this often: past capacity, an
# access line each would cost about as much as the refusal, and flood the log.
WARN_EVERY_SECONDS = 10.0

REFUSED = Counter(
    "dozen_http_server_refused",
    "Requests refused at once (503) instead of queued: over the in-flight bound, or past the caller's deadline.",
    ["reason"],
)

_DEADLINE: ContextVar[float | None] = ContextVar("request_deadline", default=None)


def remaining_seconds() -> float | None:
    """What is left of the deadline of the request being served (None: it has none)."""
    deadline = _DEADLINE.get()
    return None if deadline is None else deadline - time.monotonic()


class _Refusals:
    """Counts refusals, and says so in the log at most every WARN_EVERY_SECONDS."""

    def __init__(self) -> None:
        self._since_warned = 0
        self._warned_at = -math.inf

    def count(self, request: web.Request, reason: str) -> None:
        request[REFUSED_KEY] = reason
        REFUSED.labels(reason).inc()
        self._since_warned += 1
        now = time.monotonic()
        if now - self._warned_at >= WARN_EVERY_SECONDS:
            log.warning("refusing requests past capacity", extra={"refused": self._since_warned, "reason": reason})
            self._since_warned, self._warned_at = 0, now

    def refuse(self, request: web.Request, reason: str, detail: str) -> Problem:
        self.count(request, reason)
        return Problem(503, "Service Unavailable", detail, headers=_RETRY_AFTER)


_REFUSALS = _Refusals()
_RETRY_AFTER = {"Retry-After": str(RETRY_AFTER_SECONDS)}
_BUSY = problem_json(
    Problem(503, "Service Unavailable", "Too many requests are in progress; retry after the given seconds.")
)


def in_flight_limit(limit: FixedLimit, *, exempt: Collection[str] = QUIET_PATHS) -> Middleware:
    """At most ``limit.value`` requests at once (``exempt`` paths aside); the rest get 503 at once."""
    in_flight = 0
    REFUSED.labels("in_flight")
    REFUSED.labels("deadline")

    @web.middleware
    async def admit(request: web.Request, handler: Handler) -> web.StreamResponse:
        nonlocal in_flight
        if request.path in exempt:
            return await handler(request)
        if in_flight >= limit.value:
            _REFUSALS.count(request, "in_flight")
            return web.Response(body=_BUSY, status=503, content_type=PROBLEM_CONTENT_TYPE, headers=_RETRY_AFTER)
        in_flight += 1
        limit.admitted(in_flight)
        began = time.monotonic()
        try:
            return await handler(request)
        finally:
            in_flight -= 1
            limit.finished(time.monotonic() - began)

    return admit


@web.middleware
async def deadline(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Bound the request by the time its caller waits, when the caller says."""
    raw = request.headers.get(TIMEOUT_HEADER)
    if raw is None or request.path in QUIET_PATHS:
        return await handler(request)
    if not raw.isdigit():
        raise Problem(400, "Bad Request", f"{TIMEOUT_HEADER} must be a whole number of milliseconds.")
    if int(raw) == 0:
        raise _REFUSALS.refuse(request, "deadline", "The caller's deadline has passed.")
    # Counted from when this process took the request up: the time it waited to be read is
    # bounded by the caller's own in-flight limit.
    token = _DEADLINE.set(time.monotonic() + int(raw) / 1000)
    try:
        return await handler(request)
    finally:
        _DEADLINE.reset(token)
