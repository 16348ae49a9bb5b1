"""The fixtures for real backing services: isolation, clean-up, and failing loudly."""

from __future__ import annotations

import re
from pathlib import Path

import aio_pika
import asyncpg
import pytest

from shared.messaging import dead_letter_names
from shared.testing import backing_services, free_port

INNER_CONFTEST = 'pytest_plugins = ["shared.testing.plugin"]\n'
INNER_INI = "[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n"


@pytest.fixture
def inner(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeconftest(INNER_CONFTEST)
    pytester.makeini(INNER_INI)
    return pytester


async def database_names(server_url: str) -> set[str]:
    connection = await asyncpg.connect(server_url)
    try:
        return {row["datname"] for row in await connection.fetch("SELECT datname FROM pg_database")}
    finally:
        await connection.close()


def test_missing_service_fails_with_one_line_saying_what_to_set(
    inner: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv(backing_services.DATABASE_URL_VARIABLE, raising=False)
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-docker.sock")
    inner.makepyfile("def test_needs_postgres(database_url):\n    pass\n")

    result = inner.runpytest_subprocess()

    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*no TEST_DATABASE_URL set and no Docker engine answers: set TEST_DATABASE_URL=*"])
    result.stdout.no_fnmatch_line("*Traceback*")


async def test_each_test_gets_its_own_empty_database_and_it_is_dropped(
    inner: pytest.Pytester, postgres_server_url: str
) -> None:
    inner.makepyfile(
        """
        import asyncpg

        async def check(url):
            connection = await asyncpg.connect(url)
            try:
                assert await connection.fetchval("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == 0
                await connection.execute("CREATE TABLE mine (id int)")
                return await connection.fetchval("SELECT current_database()")
            finally:
                await connection.close()

        seen = []

        async def test_one(database_url):
            seen.append(await check(database_url))

        async def test_two(database_url):
            seen.append(await check(database_url))
            assert seen[0] != seen[1]
        """
    )
    before = await database_names(postgres_server_url)

    result = inner.runpytest_subprocess()

    result.assert_outcomes(passed=2)
    assert await database_names(postgres_server_url) == before


async def test_amqp_names_are_unique_to_the_run_and_deleted(inner: pytest.Pytester, amqp_url: str) -> None:
    inner.makepyfile(
        """
        import aio_pika
        from shared.messaging import declare_consumer_queue

        declared = []

        async def test_declares(amqp_url, amqp_names):
            queue_name = amqp_names("notifier.order-created")
            declared.append(queue_name)
            connection = await aio_pika.connect(amqp_url)
            channel = await connection.channel()
            await declare_consumer_queue(
                channel, queue_name=queue_name, exchange_name=amqp_names("orders.events"), routing_keys=["k"]
            )
            await connection.close()

        def test_names_carry_the_run_id():
            from shared.testing.plugin import RUN_ID
            assert declared[0] == f"test-{RUN_ID}-1.notifier.order-created"
            print("DECLARED", declared[0])
        """
    )

    result = inner.runpytest_subprocess("-s")

    result.assert_outcomes(passed=2)
    declared = re.search(r"DECLARED (\S+)", result.stdout.str())
    assert declared is not None
    queue_name = declared[1]
    connection = await aio_pika.connect(amqp_url)
    try:
        for name in (queue_name, *dead_letter_names(queue_name)):
            channel = await connection.channel()
            with pytest.raises(aio_pika.exceptions.ChannelNotFoundEntity):
                await channel.declare_queue(name, passive=True)
    finally:
        await connection.close()


def test_free_ports_are_never_handed_out_twice_and_stay_out_of_the_ephemeral_range() -> None:
    low, _high = (int(bound) for bound in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    ports = [free_port() for _ in range(200)]
    assert len(set(ports)) == len(ports)
    assert all(port < low for port in ports)
