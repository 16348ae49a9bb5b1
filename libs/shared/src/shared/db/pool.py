"""An asyncpg pool as an aiohttp cleanup context, registered with readiness."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import asyncpg
from aiohttp import web
from prometheus_client import Gauge

from shared.db.settings import PostgresSettings
from shared.web.admission import remaining_seconds
from shared.web.app import READINESS, CleanupContext

log = logging.getLogger(__name__)

# One pool per process, so the state is the only label.
POOL_CONNECTIONS = Gauge("dozen_db_pool_connections", "Database pool connections: open, idle, in_use, max.", ["state"])

# The stubs make Pool generic over its record type; at run time it is a plain class.
if TYPE_CHECKING:
    Pool = asyncpg.Pool[asyncpg.Record]
    PoolConnection = asyncpg.pool.PoolConnectionProxy[asyncpg.Record]
    _AcquireContext = asyncpg.pool.PoolAcquireContext[asyncpg.Record]
else:
    Pool = asyncpg.Pool
    PoolConnection = asyncpg.pool.PoolConnectionProxy
    _AcquireContext = asyncpg.pool.PoolAcquireContext


async def _keep_session(connection: asyncpg.Connection[asyncpg.Record]) -> None:
    """Instead of asyncpg's reset query on every release (RESET ALL, UNLISTEN *, CLOSE ALL,
    advisory unlock), which costs each request one more round trip to the server: a third
    of the orders web's socket writes under load (py-spy, `make bench`). Dozen keeps no
    session state on pooled connections — no SET, no LISTEN (the relay listens on a
    connection of its own), only transaction-scoped advisory locks — and asyncpg still
    rolls back any transaction left open before this runs. What the reset query also
    did, finding a connection broken mid-message, ``_Borrowed`` does instead."""


class DatabaseTimeout(TimeoutError):
    """The database did not answer in time: no connection within the acquire timeout (or the
    connect timeout), or a statement unanswered within the command timeout. What a server
    behind a blackholed link looks like; a consumer waits it out like any outage."""


class _Borrowed(_AcquireContext):
    """A borrowed connection that goes back to the pool only if it is known to be sound.

    A block that ended with the server's own answer to a query (a PostgresError: asyncpg
    has read on to the server's ReadyForQuery) leaves the connection as good as it found
    it. Anything else — a session the server ended mid-statement, a cancellation, a
    timeout — may leave asyncpg's protocol stuck mid-message with its socket still open
    (MagicStack/asyncpg#784): asyncpg's own reset query would have caught that on release,
    but Dozen skips it (``_keep_session``), so such a connection is closed instead, and the
    next borrower gets a new one rather than "cannot switch to state 15"."""

    __slots__ = ()

    async def __aenter__(self) -> PoolConnection:
        try:
            return await super().__aenter__()
        except TimeoutError as exc:
            raise DatabaseTimeout("no database connection within the acquire timeout") from exc

    async def __aexit__(self, *exc: object) -> None:
        _, failure, _ = exc
        if failure is not None and not isinstance(failure, asyncpg.PostgresError) and self.connection is not None:
            # A connection that closed under the block (its server gone, asyncpg's own abort
            # after a timeout) is back in the pool already, and terminating it again raises.
            with contextlib.suppress(asyncpg.InterfaceError):
                self.connection.terminate()
        await super().__aexit__(*exc)
        # A borrower waits on nothing else while it holds a connection (the notifier gathers
        # its emails' failures), so a timeout out of its block is a statement unanswered.
        if isinstance(failure, TimeoutError) and not isinstance(failure, DatabaseTimeout):
            raise DatabaseTimeout("the database did not answer within the command timeout") from failure


class BoundedPool(asyncpg.pool.Pool):
    """An asyncpg pool on which no caller waits for a connection without end: at most the
    acquire timeout, and never past the deadline of the request being served. A wait that
    runs out raises TimeoutError, which a web process answers with 503 and Retry-After."""

    def __init__(self, *args: Any, acquire_timeout_seconds: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._acquire_timeout = acquire_timeout_seconds

    def acquire(self, *, timeout: float | None = None) -> Any:
        bound = self._acquire_timeout if timeout is None else min(timeout, self._acquire_timeout)
        left = remaining_seconds()
        if left is not None:
            bound = min(bound, left)
        if bound <= 0:
            raise TimeoutError("the request's deadline has passed")
        return _Borrowed(self, bound)


async def close_pool(pool: Pool, timeout_seconds: float) -> None:
    """Wait for borrowed connections to come back, but never past the deadline."""
    try:
        async with asyncio.timeout(timeout_seconds):
            await pool.close()
    except TimeoutError:
        log.warning("database pool did not close in time; terminating", extra={"timeout_seconds": timeout_seconds})
        pool.terminate()


def postgres_pool(
    key: web.AppKey[Pool],
    url: str,
    *,
    min_size: int = 1,
    max_size: int = 10,
    command_timeout_seconds: float = 5.0,
    connect_timeout_seconds: float = 5.0,
    acquire_timeout_seconds: float = 5.0,
    close_timeout_seconds: float = 5.0,
) -> CleanupContext:
    """A cleanup context that opens the pool at start-up, stores it at ``key`` and closes it at exit."""

    @asynccontextmanager
    async def pool_context(app: web.Application) -> AsyncIterator[None]:
        pool = await BoundedPool(
            url,
            min_size=min_size,
            max_size=max_size,
            command_timeout=command_timeout_seconds,
            # asyncpg waits 60 s by default; a client should hear "unavailable" long before.
            timeout=connect_timeout_seconds,
            reset=_keep_session,
            acquire_timeout_seconds=acquire_timeout_seconds,
            # asyncpg.create_pool's own defaults, which Pool itself does not have.
            max_queries=50_000,
            max_inactive_connection_lifetime=300.0,
            setup=None,
            init=None,
            connect=None,
            loop=None,
            connection_class=asyncpg.Connection,
            record_class=asyncpg.Record,
        )
        app[key] = pool
        app[READINESS].add_check("postgres", lambda: pool.fetchval("SELECT 1"))
        POOL_CONNECTIONS.labels("open").set_function(pool.get_size)
        POOL_CONNECTIONS.labels("idle").set_function(pool.get_idle_size)
        POOL_CONNECTIONS.labels("in_use").set_function(lambda: pool.get_size() - pool.get_idle_size())
        POOL_CONNECTIONS.labels("max").set_function(pool.get_max_size)
        try:
            yield
        finally:
            await close_pool(pool, close_timeout_seconds)

    return pool_context


def pool_for(key: web.AppKey[Pool], settings: PostgresSettings) -> CleanupContext:
    """The pool a process's PostgresSettings describe."""
    return postgres_pool(
        key,
        settings.database_url.get_secret_value(),
        min_size=settings.db_pool_min_size,
        max_size=settings.db_pool_max_size,
        command_timeout_seconds=settings.db_command_timeout_seconds,
        connect_timeout_seconds=settings.db_command_timeout_seconds,
        acquire_timeout_seconds=settings.db_pool_acquire_timeout_seconds,
    )
