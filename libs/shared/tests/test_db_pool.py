from __future__ import annotations

import asyncio

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import REGISTRY

from shared.config import ServiceSettings
from shared.db import Pool, database_unavailable_middleware, postgres_pool
from shared.web import PROBLEM_CONTENT_TYPE, create_base_app

DB = web.AppKey("db", Pool)


class PoolSettings(ServiceSettings, env_prefix="POOLTEST_"):
    service_name = "pooltest"


async def test_pool_lives_with_the_app_and_reports_readiness(database_url: str) -> None:
    app = create_base_app(PoolSettings())
    app.cleanup_ctx.append(postgres_pool(DB, database_url, min_size=1, max_size=2))

    async with TestClient(TestServer(app)) as client:
        response = await client.get("/readyz")
        assert response.status == 200
        assert (await response.json())["checks"] == {"postgres": "ok"}
        assert await app[DB].fetchval("SELECT 41 + 1") == 42
        assert REGISTRY.get_sample_value("dozen_db_pool_connections", {"state": "max"}) == 2
        async with app[DB].acquire():
            assert REGISTRY.get_sample_value("dozen_db_pool_connections", {"state": "in_use"}) == 1
        pool = app[DB]

    assert pool.is_closing()


async def test_a_connection_comes_back_after_a_query_error_and_is_replaced_after_anything_else(
    database_url: str,
) -> None:
    # Anything but the server's answer may leave asyncpg's protocol stuck mid-message with
    # its socket open (asyncpg#784, seen when PostgreSQL restarts): such a connection must
    # not be handed to the next borrower.
    app = create_base_app(PoolSettings())
    app.cleanup_ctx.append(postgres_pool(DB, database_url, min_size=1, max_size=1))

    async def backend() -> int:
        async with app[DB].acquire() as connection:
            return int(await connection.fetchval("SELECT pg_backend_pid()"))

    async with TestClient(TestServer(app)):
        first = await backend()
        with pytest.raises(asyncpg.DivisionByZeroError):
            async with app[DB].acquire() as connection:
                await connection.fetchval("SELECT 1 / 0")
        assert await backend() == first, "a query the server refused does not cost the connection"

        with pytest.raises(asyncio.TimeoutError):
            async with app[DB].acquire() as connection:
                await connection.fetchval("SELECT pg_sleep(5)", timeout=0.05)
        second = await backend()
        assert second != first, "a statement abandoned mid-way closes its connection"

        async def fail_while_borrowing() -> None:
            async with app[DB].acquire() as connection:
                await connection.fetchval("SELECT 1")
                raise RuntimeError("the borrower failed")

        with pytest.raises(RuntimeError):
            await fail_while_borrowing()
        third = await backend()
        assert third != second

        # A connection closed under the block (asyncpg aborts one whose server vanished) is
        # back in the pool already: the borrower's own failure is what surfaces, not the
        # pool's complaint about terminating it twice (which made an outage look like a bug).
        async def lose_the_connection_while_borrowing() -> None:
            async with app[DB].acquire() as connection:
                connection.terminate()
                raise ConnectionResetError("the server went away")

        with pytest.raises(ConnectionResetError):
            await lose_the_connection_while_borrowing()
        assert await backend() != third


async def test_unreachable_database_fails_startup_instead_of_serving_blind() -> None:
    app = create_base_app(PoolSettings())
    app.cleanup_ctx.append(postgres_pool(DB, "postgresql://postgres@127.0.0.1:1/none", min_size=1))
    client = TestClient(TestServer(app))

    with pytest.raises(OSError, match="Connect call failed"):
        await client.start_server()
    await client.close()


async def test_a_database_that_cannot_be_reached_is_a_quick_503() -> None:
    app = create_base_app(PoolSettings())
    app.middlewares.append(database_unavailable_middleware)
    app.cleanup_ctx.append(postgres_pool(DB, "postgresql://postgres@127.0.0.1:1/none", min_size=0))

    async def read(request: web.Request) -> web.Response:
        return web.json_response(await request.app[DB].fetchval("SELECT 1"))

    app.router.add_get("/read", read)

    async with TestClient(TestServer(app)) as client:
        response = await client.get("/read")

        assert response.status == 503
        assert response.headers["Retry-After"] == "1"
        assert response.content_type == PROBLEM_CONTENT_TYPE
        assert "127.0.0.1" not in await response.text()


async def test_a_session_the_server_ends_mid_request_is_a_503_and_the_next_request_is_served(database_url: str) -> None:
    app = create_base_app(PoolSettings())
    app.middlewares.append(database_unavailable_middleware)
    app.cleanup_ctx.append(postgres_pool(DB, database_url, min_size=1, max_size=1))

    async def read(request: web.Request) -> web.Response:
        # What a PostgreSQL shutting down or an administrator's pg_terminate_backend does to a session.
        suicide = request.query.get("terminated") == "yes"
        query = "SELECT pg_terminate_backend(pg_backend_pid())" if suicide else "SELECT 1"
        return web.json_response(await request.app[DB].fetchval(query))

    app.router.add_get("/read", read)

    async with TestClient(TestServer(app)) as client:
        ended = await client.get("/read", params={"terminated": "yes"})
        assert ended.status == 503, await ended.text()
        assert ended.headers["Retry-After"] == "1"
        served = await client.get("/read")
        assert (served.status, await served.json()) == (200, 1)
