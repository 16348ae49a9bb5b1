"""The pooled HTTP client to orders, and what its failures become for the public.

Every failure is answered quickly and in the public's terms: 503 when orders cannot be
reached or says it is unavailable, 504 when it does not answer within the configured
timeouts, 502 for anything else. Upstream bodies, tracebacks and host names never leak.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web
from prometheus_client import Counter

from gateway.settings import WebSettings
from shared.web import CleanupContext, Problem
from shared.web.admission import TIMEOUT_HEADER
from shared.web.metrics import HTTP_CLIENT_DURATION, status_class
from shared.web.streams import PING_SECONDS

log = logging.getLogger(__name__)

_ATTEMPTS = 2
# Failures of the connection, not answers: the request may not have reached orders at all.
_CONNECTION_LOST = (aiohttp.ClientConnectorError, aiohttp.ServerDisconnectedError, aiohttp.ClientOSError)
UPSTREAM_RETRIES = Counter(
    "dozen_gateway_upstream_retries", "Calls repeated on a fresh connection after one was lost.", ["upstream", "error"]
)


@dataclass(frozen=True)
class UpstreamAnswer:
    status: int
    headers: Mapping[str, str]
    body: Any


class OrdersClient:
    def __init__(self, session: aiohttp.ClientSession, base_url: str, *, timeout_seconds: float) -> None:
        self._session = session
        self._base_url = base_url.rstrip("/")
        # Orders is told how long this gateway waits, so it starts no work past that.
        self._deadline_header = {TIMEOUT_HEADER: str(int(timeout_seconds * 1000))}
        # A stream has no end in sight, only a bound on silence: orders sends a keep-alive
        # every PING_SECONDS, so a few missed in a row means it is gone.
        self._stream_timeout = aiohttp.ClientTimeout(
            total=None, connect=session.timeout.connect, sock_read=3 * PING_SECONDS
        )

    async def call(
        self,
        method: str,
        path: str,
        *,
        route: str,
        request_id: str,
        json_body: object = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> UpstreamAnswer:
        started = time.perf_counter()
        outcome = "error"
        try:
            answer = await self._call(
                method, path, request_id=request_id, json_body=json_body, params=params, headers=headers
            )
        except Problem as problem:
            outcome = {504: "timeout", 503: "unavailable"}.get(problem.status, "error")
            raise
        else:
            outcome = status_class(answer.status)
            return answer
        finally:
            HTTP_CLIENT_DURATION.labels("orders", route, method, outcome).observe(time.perf_counter() - started)

    async def _call(
        self,
        method: str,
        path: str,
        *,
        request_id: str,
        json_body: object,
        params: Mapping[str, str] | None,
        headers: Mapping[str, str] | None,
    ) -> UpstreamAnswer:
        for attempt in range(1, _ATTEMPTS + 1):
            try:
                async with self._session.request(
                    method,
                    self._base_url + path,
                    json=json_body,
                    params=params,
                    headers={"X-Request-Id": request_id, **self._deadline_header, **(headers or {})},
                ) as response:
                    raw = await response.read()
                    status, answer_headers = response.status, dict(response.headers)
                break
            except TimeoutError:
                log.warning("orders timed out", extra={"request_id": request_id, "http_path": path})
                raise Problem(504, "Gateway Timeout", "The order service did not answer in time.") from None
            except _CONNECTION_LOST as exc:
                # Every call to orders is safe to repeat: reads, and orders placed under the
                # customer's Idempotency-Key. A connection that died under the request (an
                # instance restarting, a reset on the way) is worth one more try on a fresh one.
                if attempt < _ATTEMPTS:
                    UPSTREAM_RETRIES.labels("orders", type(exc).__name__).inc()
                    continue
                log.warning("orders unreachable", extra={"request_id": request_id, "error": type(exc).__name__})
                raise _unavailable() from None
            except aiohttp.ClientError as exc:
                log.warning("orders failed", extra={"request_id": request_id, "error": type(exc).__name__})
                raise Problem(502, "Bad Gateway", "The order service failed to answer.") from None
        if status == 503:
            raise _unavailable(answer_headers.get("Retry-After", "1"))
        if status == 401:
            # Not the customer's doing: this gateway's GATEWAY_ORDERS_TOKEN is not orders' ORDERS_API_TOKEN.
            log.error("orders refused the gateway's credential", extra={"request_id": request_id})
            raise Problem(502, "Bad Gateway", "The order service failed to answer.")
        if status >= 500:
            log.warning("orders answered with an error", extra={"request_id": request_id, "upstream_status": status})
            raise Problem(502, "Bad Gateway", "The order service failed to answer.")
        try:
            body = json.loads(raw)
        except ValueError:
            raise Problem(502, "Bad Gateway", "The order service answered with something unreadable.") from None
        return UpstreamAnswer(status, answer_headers, body)

    @asynccontextmanager
    async def stream(
        self, path: str, *, request_id: str, params: Mapping[str, str]
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """A long-lived answer (Server-Sent Events): failing to open it fails as a call does;
        once open, it ends when orders ends it or goes quiet for longer than its keep-alives."""
        try:
            response = await self._session.get(
                self._base_url + path, params=params, headers={"X-Request-Id": request_id}, timeout=self._stream_timeout
            )
        except TimeoutError:
            raise Problem(504, "Gateway Timeout", "The order service did not answer in time.") from None
        except aiohttp.ClientError as exc:
            log.warning("orders unreachable", extra={"request_id": request_id, "error": type(exc).__name__})
            raise _unavailable() from None
        try:
            if response.status == 503:
                raise _unavailable(response.headers.get("Retry-After", "1"))
            if response.status != 200:
                log.warning(
                    "orders refused a stream", extra={"request_id": request_id, "upstream_status": response.status}
                )
                raise Problem(502, "Bad Gateway", "The order service failed to answer.")
            yield response
        finally:
            response.close()


def _unavailable(retry_after: str = "1") -> Problem:
    return Problem(
        503,
        "Service Unavailable",
        "The order service is unavailable; retry later.",
        headers={"Retry-After": retry_after},
    )


ORDERS = web.AppKey("orders_client", OrdersClient)


def orders_client(settings: WebSettings) -> CleanupContext:
    @asynccontextmanager
    async def client_context(app: web.Application) -> AsyncIterator[None]:
        session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(
                total=settings.upstream_timeout_seconds, connect=settings.upstream_connect_timeout_seconds
            ),
            connector=aiohttp.TCPConnector(limit=settings.upstream_max_connections),
            # Cookies from upstream must never reach another customer's request.
            cookie_jar=aiohttp.DummyCookieJar(),
            headers={"Authorization": f"Bearer {settings.orders_token.get_secret_value()}"},
        )
        app[ORDERS] = OrdersClient(
            session, settings.orders_url.get_secret_value(), timeout_seconds=settings.upstream_timeout_seconds
        )
        try:
            yield
        finally:
            await session.close()
            # Lets the connector's transports close before the loop does (aiohttp's advice).
            await asyncio.sleep(0)

    return client_context
