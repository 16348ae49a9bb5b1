"""pytest fixtures for real backing services. Enable with ``pytest_plugins = ["shared.testing.plugin"]``.

Isolation: every test that asks for ``database_url`` gets a database of its own, and
every AMQP name from ``amqp_names`` carries this run's id; both are removed afterwards,
so concurrent runs (two developers, CI and a laptop) never see each other's data.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import ExitStack

import aio_pika
import pytest
import pytest_asyncio
from aio_pika.abc import AbstractRobustConnection

from shared.testing import backing_services
from shared.testing.amqp import AmqpNames
from shared.testing.databases import create_database, drop_databases
from shared.testing.smtp import SmtpSink

RUN_ID = uuid.uuid4().hex[:8]
_sequence = itertools.count(1)


@pytest.fixture(scope="session")
def _containers() -> Iterator[ExitStack]:
    with ExitStack() as stack:
        yield stack


def _server(resolve: Callable[[ExitStack], str], containers: ExitStack) -> str:
    # A missing server is a failure that says what to set, never a skip.
    try:
        return resolve(containers)
    except backing_services.BackingServiceUnavailable as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="session")
def postgres_server_url(_containers: ExitStack) -> str:
    return _server(backing_services.postgres_url, _containers)


@pytest.fixture(scope="session")
def amqp_url(_containers: ExitStack) -> str:
    return _server(backing_services.amqp_url, _containers)


@pytest.fixture(scope="session")
def redis_url(_containers: ExitStack) -> str:
    """A Redis the tests may write keys to (each test's keys are its own by name)."""
    return _server(backing_services.redis_url, _containers)


NewDatabase = Callable[[], Awaitable[str]]


@pytest_asyncio.fixture
async def new_database(postgres_server_url: str) -> AsyncIterator[NewDatabase]:
    """Creates new, empty databases on demand (one per service, say); all dropped afterwards."""
    created: list[str] = []

    async def create() -> str:
        name = f"test_{RUN_ID}_{next(_sequence)}"
        url = await create_database(postgres_server_url, name)
        created.append(name)
        return url

    yield create
    await drop_databases(postgres_server_url, created)


@pytest_asyncio.fixture
async def database_url(new_database: NewDatabase) -> str:
    """A new, empty database for this test alone, dropped afterwards."""
    return await new_database()


@pytest.fixture
def smtp_sink() -> Iterator[SmtpSink]:
    """A real SMTP server on a free loopback port, for this test alone."""
    sink = SmtpSink()
    sink.start()
    yield sink
    sink.stop()


@pytest_asyncio.fixture
async def amqp(amqp_url: str) -> AsyncIterator[AbstractRobustConnection]:
    """A robust connection to the test broker for this test."""
    connection = await aio_pika.connect_robust(amqp_url)
    yield connection
    await connection.close()


@pytest_asyncio.fixture
async def amqp_names(amqp_url: str) -> AsyncIterator[AmqpNames]:
    names = AmqpNames(f"test-{RUN_ID}-{next(_sequence)}")
    yield names
    await names.delete_all(amqp_url)
