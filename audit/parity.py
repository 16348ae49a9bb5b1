"""X: the versions of Python and of each backing service, wherever Dozen states or meets them.

Sources: .python-version, the Dockerfiles, docker-compose.yml's pinned images, the test
fixtures' images (testcontainers), and the servers the tests actually connect to (their own
reported versions). Drift within a compatible range is listed; beyond it, the factor fails.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import aio_pika
import asyncpg
import redis.asyncio

from audit.deploys import SERVICES, read_dotenv
from audit.scorecard import Verdict, verdict
from shared.testing import backing_services

# How much of a version must agree everywhere: the part that changes what Dozen can rely on.
COMPATIBLE_PARTS = {"python": 2, "postgresql": 1, "rabbitmq": 2, "redis": 1}
USES = {
    "gateway": ("python", "redis"),
    "orders": ("python", "postgresql", "rabbitmq"),
    "notifier": ("python", "postgresql", "rabbitmq"),
}
COMPOSE_IMAGE_VARIABLES = {"postgresql": "POSTGRES_IMAGE", "rabbitmq": "RABBITMQ_IMAGE", "redis": "REDIS_IMAGE"}
FIXTURE_IMAGES = {
    "postgresql": backing_services.POSTGRES_IMAGE,
    "rabbitmq": backing_services.RABBITMQ_IMAGE,
    "redis": backing_services.REDIS_IMAGE,
}
TEST_URLS = {"postgresql": "TEST_DATABASE_URL", "rabbitmq": "TEST_AMQP_URL", "redis": "TEST_REDIS_URL"}


def version_in(text: str) -> str | None:
    found = re.search(r"(\d+(?:\.\d+){0,2})", text.rsplit(":", maxsplit=1)[-1])
    return found.group(1) if found else None


def stated_versions(root: Path) -> dict[str, dict[str, str]]:
    """component -> {where: version} from the repository's files."""
    dockerfile = (root / "services" / "orders" / "Dockerfile").read_text()
    python_image = re.search(r"ARG PYTHON_IMAGE=(\S+)", dockerfile)
    example = read_dotenv(root / ".env.example")
    compose = (root / "docker-compose.yml").read_text()
    versions: dict[str, dict[str, str | None]] = {
        "python": {
            ".python-version": (root / ".python-version").read_text().strip(),
            "Dockerfiles": version_in(python_image.group(1)) or "?" if python_image else "?",
            "compose (PYTHON_IMAGE)": version_in(example.get("PYTHON_IMAGE", "")) or "?",
            "this interpreter": ".".join(map(str, sys.version_info[:3])),
        }
    }
    for component, variable in COMPOSE_IMAGE_VARIABLES.items():
        default = re.search(rf"\${{{variable}:-([^}}]+)}}", compose)
        versions[component] = {
            "compose default": version_in(default.group(1)) if default else "?",
            ".env.example": version_in(example.get(variable, "")) or "?",
            "test fixtures": version_in(FIXTURE_IMAGES[component]) or "?",
        }
    return {name: {where: value or "?" for where, value in found.items()} for name, found in versions.items()}


async def _postgres(url: str) -> str:
    connection = await asyncpg.connect(url)
    try:
        return str(await connection.fetchval("SHOW server_version")).split()[0]
    finally:
        await connection.close()


async def _rabbitmq(url: str) -> str:
    connection = await aio_pika.connect(url)
    try:
        properties = connection.transport.connection.server_properties  # type: ignore[union-attr]
        return str(properties["version"])
    finally:
        await connection.close()


async def _redis(url: str) -> str:
    client = redis.asyncio.from_url(url)
    try:
        return str((await client.info("server"))["redis_version"])
    finally:
        await client.aclose()


PROBES: dict[str, Callable[[str], Awaitable[str]]] = {"postgresql": _postgres, "rabbitmq": _rabbitmq, "redis": _redis}


async def connected_versions(environ: dict[str, str]) -> dict[str, str]:
    """component -> what the server at its TEST_* URL reports (or why it could not be asked)."""
    found = {}
    for component, variable in TEST_URLS.items():
        url = environ.get(variable)
        if not url:
            found[component] = f"? ({variable} not set)"
            continue
        try:
            found[component] = await PROBES[component](url)
        except Exception as error:  # noqa: BLE001 - reported as the finding
            found[component] = f"? ({type(error).__name__})"
    return found


def parity(root: Path, environ: dict[str, str] | None = None) -> list[Verdict]:
    versions = stated_versions(root)
    for component, version in asyncio.run(connected_versions(environ or dict(os.environ))).items():
        versions[component]["servers the tests use"] = version
    verdicts = []
    for service in SERVICES:
        failures, evidence = [], []
        for component in USES[service]:
            seen = versions[component]
            parts = COMPATIBLE_PARTS[component]
            compatible = {".".join(value.split(".")[:parts]) for value in seen.values()}
            listing = ", ".join(f"{where} {value}" for where, value in seen.items())
            if len(compatible) > 1 or any(value.startswith("?") for value in seen.values()):
                failures.append(f"{component} drifts beyond {parts} part(s) of the version: {listing}")
            elif len(set(seen.values())) > 1:
                evidence.append(f"{component} agrees to {parts} part(s); patch drift: {listing}")
            else:
                evidence.append(f"{component} the same everywhere: {listing}")
        verdicts.append(verdict("X", service, failures, evidence))
    return verdicts
