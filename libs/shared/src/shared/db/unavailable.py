"""A database that cannot be reached is a 503 with Retry-After, not a 500 or a hang."""

from __future__ import annotations

import logging

import asyncpg
from aiohttp import web
from aiohttp.typedefs import Handler

from shared.db.pool import DatabaseTimeout
from shared.web.problems import Problem

log = logging.getLogger(__name__)

# Failures of reaching the server (or a server that takes no writes now), as opposed to
# errors in what was asked of it.
# InternalClientError: asyncpg's protocol left mid-message by a session the server ended
# (asyncpg#784); the pool closes that connection (shared.db.pool), the next try gets a new one.
UNAVAILABLE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.TooManyConnectionsError,
    asyncpg.ReadOnlySQLTransactionError,
)

# The server gone or restarting, as a message consumer sees it: retry until it is back
# (RetryPolicy.transient). Narrower than UNAVAILABLE_ERRORS: a bare OSError or timeout may
# come from another service (SMTP, say), whose failures must still count; the database's own
# timeouts are told apart as DatabaseTimeout.
DATABASE_OUTAGE: tuple[type[BaseException], ...] = (
    DatabaseTimeout,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.TooManyConnectionsError,
    asyncpg.InternalClientError,
    # A server that takes no writes now: a primary demoted in a failover, or switched to
    # read-only while its disk is rescued. The writes wait for a writable one, as for an outage.
    asyncpg.ReadOnlySQLTransactionError,
    ConnectionRefusedError,
    ConnectionResetError,
)


@web.middleware
async def database_unavailable_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except UNAVAILABLE_ERRORS as exc:
        log.warning("database unavailable", extra={"error": type(exc).__name__, "http_path": request.path})
        raise Problem(
            503, "Service Unavailable", "The data store is unavailable; retry later.", headers={"Retry-After": "1"}
        ) from exc
