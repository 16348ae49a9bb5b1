"""X: the versions of Python and of each backing service, wherever Dozen states or meets them.

Sources: .python-version, the Dockerfiles, docker-compose.yml's pinned images, .env.example,
the Kubernetes overlays (the versions each states it expects beside it), the test fixtures'
images (testcontainers), and the servers the tests actually connect to (their own reported
versions). Drift within a compatible range is listed; beyond it, or unknown, the factor fails.
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

from audit.deploys import OVERLAYS, SERVICES, SourceUnavailable, of_kind, read_dotenv, rendered_overlay
from audit.scorecard import Verdict, verdict
from shared.testing import backing_services
from shared.testing.backing_services import SERVER_URL_VARIABLES

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
TEST_URLS = SERVER_URL_VARIABLES


def version_in(text: str) -> str | None:
    found = re.search(r"(\d+(?:\.\d+){0,2})", text.rsplit(":", maxsplit=1)[-1])
    return found.group(1) if found else None


def dockerfile_python(root: Path) -> str:
    """The Python version the Dockerfiles build on unless told otherwise (PYTHON_IMAGE's default)."""
    found = re.search(r"ARG PYTHON_IMAGE=(\S+)", (root / "services" / "orders" / "Dockerfile").read_text())
    return (version_in(found.group(1)) if found else None) or "?"


def stated_versions(root: Path) -> dict[str, dict[str, str]]:
    """component -> {where: version} from the repository's files."""
    example = read_dotenv(root / ".env.example")
    local = read_dotenv(root / ".env") if (root / ".env").exists() else None
    compose = (root / "docker-compose.yml").read_text()
    versions: dict[str, dict[str, str | None]] = {
        "python": {
            ".python-version": (root / ".python-version").read_text().strip(),
            "Dockerfiles": dockerfile_python(root),
            "compose (PYTHON_IMAGE)": version_in(example.get("PYTHON_IMAGE", "")) or "?",
            **({".env (PYTHON_IMAGE)": version_in(local.get("PYTHON_IMAGE", "")) or "?"} if local else {}),
            "this interpreter": ".".join(map(str, sys.version_info[:3])),
        }
    }
    stated = k8s_stated_versions(root)
    for component, variable in COMPOSE_IMAGE_VARIABLES.items():
        default = re.search(rf"\${{{variable}:-([^}}]+)}}", compose)
        versions[component] = {
            "compose default": version_in(default.group(1)) if default else "?",
            ".env.example": version_in(example.get(variable, "")) or "?",
            **({".env": version_in(local.get(variable, "")) or "?"} if local else {}),
            **{f"k8s {overlay} (stated)": found.get(component, "?") for overlay, found in stated.items()},
            "test fixtures": version_in(FIXTURE_IMAGES[component]) or "?",
        }
    return {name: {where: value or "?" for where, value in found.items()} for name, found in versions.items()}


def k8s_stated_versions(root: Path) -> dict[str, dict[str, str]]:
    """overlay -> component -> the version its Namespace states (annotation dozen.dev/<component>-version)."""
    stated = {}
    for overlay in OVERLAYS:
        try:
            manifests = rendered_overlay(overlay, root)
        except SourceUnavailable as error:
            stated[overlay] = dict.fromkeys(COMPOSE_IMAGE_VARIABLES, f"? ({error})")
            continue
        annotations = {
            key: value
            for namespace in of_kind(manifests, "Namespace").values()
            for key, value in namespace["metadata"].get("annotations", {}).items()
        }
        stated[overlay] = {
            component: annotations.get(f"dozen.dev/{component}-version", "? (not stated)")
            for component in COMPOSE_IMAGE_VARIABLES
        }
    return stated


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


async def server_version(component: str, url: str) -> str:
    """What the server at ``url`` says its version is (or why it could not be asked)."""
    try:
        async with asyncio.timeout(10):
            return await PROBES[component](url)
    except Exception as error:  # noqa: BLE001 - reported as the finding
        return f"? ({type(error).__name__})"


async def connected_versions(environ: dict[str, str]) -> dict[str, str]:
    """component -> what the server at its TEST_* URL reports (or why it could not be asked)."""
    found = {}
    for component, variable in TEST_URLS.items():
        url = environ.get(variable)
        found[component] = await server_version(component, url) if url else f"? ({variable} not set)"
    return found


def parity(root: Path, environ: dict[str, str] | None = None) -> list[Verdict]:
    versions = stated_versions(root)
    for component, version in asyncio.run(connected_versions(environ or dict(os.environ))).items():
        versions[component]["servers the tests use"] = version
    verdicts = []
    for service in SERVICES:
        failures, evidence = [], []
        for component in USES[service]:
            problems, line = judge_versions(component, versions[component])
            failures += problems
            evidence += [line] if line else []
        verdicts.append(verdict("X", service, failures, evidence))
    return verdicts


def judge_versions(component: str, seen: dict[str, str]) -> tuple[list[str], str | None]:
    """(failures, evidence): unknown versions and drift past the compatible part fail."""
    parts = COMPATIBLE_PARTS[component]
    unknown = {where: value for where, value in seen.items() if value.startswith("?")}
    known = {where: value for where, value in seen.items() if where not in unknown}
    listing = ", ".join(f"{where} {value}" for where, value in known.items())
    failures = [f"{component} version unknown at {where}: {value}" for where, value in unknown.items()]
    if len({".".join(value.split(".")[:parts]) for value in known.values()}) > 1:
        failures.append(f"{component} drifts beyond {parts} part(s) of the version: {listing}")
    if failures:
        return failures, None
    if len(set(known.values())) > 1:
        return [], f"{component} agrees to {parts} part(s); finer drift: {listing}"
    return [], f"{component} the same everywhere: {listing}"
