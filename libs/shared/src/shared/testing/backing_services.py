"""Where the tests' PostgreSQL and RabbitMQ are: given by TEST_* URLs, or started in Docker.

Tests never mock these servers. If neither a URL nor a Docker engine is there, the
run fails with one line saying what to set, rather than skipping and passing.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from contextlib import ExitStack
from urllib.parse import urlsplit

# Backing service -> the variable naming the test server's URL: the one place these names live.
SERVER_URL_VARIABLES = {"postgresql": "TEST_DATABASE_URL", "rabbitmq": "TEST_AMQP_URL", "redis": "TEST_REDIS_URL"}
DATABASE_URL_VARIABLE = SERVER_URL_VARIABLES["postgresql"]
AMQP_URL_VARIABLE = SERVER_URL_VARIABLES["rabbitmq"]
REDIS_URL_VARIABLE = SERVER_URL_VARIABLES["redis"]


def benchmark_server_url(component: str) -> str | None:
    """The server a benchmark may use: BENCH_<…>_URL if set, else the tests' TEST_<…>_URL."""
    variable = SERVER_URL_VARIABLES[component]
    return os.environ.get(variable.replace("TEST_", "BENCH_", 1)) or os.environ.get(variable)


# Kept in step with docker-compose.yml (dev/prod parity); overridable like the compose images.
POSTGRES_IMAGE = os.environ.get("POSTGRES_IMAGE", "postgres:15.10-bookworm")
RABBITMQ_IMAGE = os.environ.get("RABBITMQ_IMAGE", "rabbitmq:3.10.25-management")
REDIS_IMAGE = os.environ.get("REDIS_IMAGE", "redis:7.2.7-bookworm")


class BackingServiceUnavailable(Exception):
    pass


def _docker_answers() -> bool:
    """Whether a Docker engine listens where DOCKER_HOST (or the default socket) says.

    Probed with a plain socket: the Docker SDK leaks one when no engine is there.
    """
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    parts = urlsplit(host)
    try:
        if parts.scheme == "unix":
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
                probe.settimeout(3)
                probe.connect(parts.path)
        else:
            with socket.create_connection((parts.hostname or "localhost", parts.port or 2375), timeout=3):
                pass
    except OSError:
        return False
    return True


def _server(variable: str, example: str, container: Callable[[], str]) -> str:
    """The URL ``variable`` names, else that of a container ``container`` starts in Docker."""
    if url := os.environ.get(variable):
        return url
    if not _docker_answers():
        raise BackingServiceUnavailable(
            f"no {variable} set and no Docker engine answers: set {variable}={example} "
            "(or start Docker so testcontainers can run one)"
        )
    return container()


def postgres_url(stack: ExitStack) -> str:
    """A superuser URL of a PostgreSQL server the tests may create databases on.

    A container, if one has to be started, lives as long as ``stack``.
    """

    def container() -> str:
        from testcontainers.postgres import PostgresContainer  # noqa: PLC0415

        return str(stack.enter_context(PostgresContainer(POSTGRES_IMAGE, driver=None)).get_connection_url())

    return _server(DATABASE_URL_VARIABLE, "postgresql://postgres@127.0.0.1:5432/postgres", container)


def amqp_url(stack: ExitStack) -> str:
    def container() -> str:
        from testcontainers.rabbitmq import RabbitMqContainer  # noqa: PLC0415

        params = stack.enter_context(RabbitMqContainer(RABBITMQ_IMAGE)).get_connection_params()
        # pragma: allowlist nextline secret - RabbitMQ's well-known default account
        return f"amqp://guest:guest@{params.host}:{params.port}/"

    # pragma: allowlist nextline secret - RabbitMQ's well-known default account
    return _server(AMQP_URL_VARIABLE, "amqp://guest:guest@127.0.0.1:5672/", container)


def redis_url(stack: ExitStack) -> str:
    def container() -> str:
        from testcontainers.redis import RedisContainer  # noqa: PLC0415

        redis = stack.enter_context(RedisContainer(REDIS_IMAGE))
        return f"redis://{redis.get_container_host_ip()}:{redis.get_exposed_port(6379)}/0"

    return _server(REDIS_URL_VARIABLE, "redis://127.0.0.1:6379/0", container)
