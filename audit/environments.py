"""What each environment gives each service, read from what makes that environment: the
variables its processes get, the image (or source) they run, the backing services' versions,
Python, and the lockfile their dependencies come from.

- local: .env (or .env.example before `make dev` made one) as honcho hands it to the Procfile;
  the servers its URLs name, asked for their versions; this checkout's .venv.
- CI: what .ci/run runs: the end-to-end harness's environment (harness.stack); the servers
  at the TEST_* URLs; the uv.lock of the commit CI checks out (HEAD).
- compose: `docker compose config` with the same .env; images as tagged; the lock hash the
  built images carry (dev.dozen.lock-hash) when they are here to inspect.
- k8s dev, k8s prod: the rendered overlays; the backing-service versions each states.
"""

from __future__ import annotations

import asyncio
import json
import platform
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from audit.deploys import (
    SERVICES,
    Process,
    compose_processes,
    dotenv_processes,
    k8s_processes,
    read_dotenv,
    resolved_compose,
)
from audit.release import lock_hash_of
from audit.versions import USES, dockerfile_python, k8s_stated_versions, server_version, version_in
from harness.procfile import process_types
from harness.stack import process_commands
from shared.testing.backing_services import SERVER_URL_VARIABLES
from shared.testing.databases import with_database

ENVIRONMENTS = ("local", "CI", "compose", "k8s dev", "k8s prod")
PREFIXES = {service: f"{service.upper()}_" for service in SERVICES}
# Besides a service's own: the standard variables its processes read.
STANDARD_PREFIXES = ("OTEL_",)
LOCK_LABEL = "dev.dozen.lock-hash"
# The URL in each environment through which a service reaches each backing service.
LOCAL_URLS = {
    ("gateway", "redis"): "GATEWAY_REDIS_URL",
    ("orders", "postgresql"): "ORDERS_DATABASE_URL",
    ("orders", "rabbitmq"): "ORDERS_AMQP_URL",
    ("notifier", "postgresql"): "NOTIFIER_DATABASE_URL",
    ("notifier", "rabbitmq"): "NOTIFIER_AMQP_URL",
}
CI_URLS = SERVER_URL_VARIABLES


@dataclass(frozen=True)
class View:
    """One environment, as one service sees it."""

    variables: list[str]
    image: str
    backing: dict[str, str]
    python: str
    lock: str


Matrix = dict[str, dict[str, View]]  # environment -> service -> view


def variables_of(processes: list[Process], service: str) -> list[str]:
    """Every variable of the service's own (or a standard one) its processes are given."""
    given = {name for process in processes if process.service == service for name in process.environment}
    return sorted(name for name in given if name.startswith((PREFIXES[service], *STANDARD_PREFIXES)))


def collect(root: Path, environ: dict[str, str]) -> Matrix:
    dotenv = ".env" if (root / ".env").exists() else ".env.example"
    working_lock = lock_hash_of((root / "uv.lock").read_bytes())
    stated = k8s_stated_versions(root)
    matrix: Matrix = {"local": {}, "CI": {}, "compose": {}}
    local = dotenv_processes(root / dotenv)
    ci = _ci_processes()
    compose = compose_processes(root, dotenv)
    compose_spec = resolved_compose(root, dotenv)
    local_values = read_dotenv(root / dotenv)
    for service in SERVICES:
        matrix["local"][service] = View(
            variables_of(local, service),
            f"source ({dotenv}, uv run in .venv)",
            _probe(
                {
                    component: _maintenance(local_values.get(LOCAL_URLS[service, component], ""))
                    for component in _backing(service)
                }
            ),
            f"{platform.python_version()} (.venv)",
            f"{working_lock} ({'.venv in sync' if _venv_in_sync(root) else '.venv NOT in sync: make install'})",
        )
        matrix["CI"][service] = View(
            variables_of(ci, service),
            "source (make test), the release built as the images are (make audit)",
            _probe({component: environ.get(CI_URLS[component], "") for component in _backing(service)}),
            f"{platform.python_version()} (.python-version via uv)",
            _lock_at(root, "HEAD"),
        )
        images = sorted({str(process.image) for process in compose if process.service == service})
        matrix["compose"][service] = View(
            variables_of(compose, service),
            ", ".join(images),
            {
                component: version_in(str(compose_spec[_compose_service(component)]["image"])) or "?"
                for component in _backing(service)
            },
            _compose_python(compose_spec, service),
            _image_lock(images, root, working_lock),
        )
    for overlay in ("dev", "prod"):
        processes = k8s_processes(overlay, root)
        matrix[f"k8s {overlay}"] = {}
        for service in SERVICES:
            images = sorted({str(process.image) for process in processes if process.service == service})
            matrix[f"k8s {overlay}"][service] = View(
                variables_of(processes, service),
                ", ".join(images),
                {component: f"{stated[overlay][component]} (stated)" for component in _backing(service)},
                f"{dockerfile_python(root)} (the Dockerfile's default)",
                _image_lock(images, root, working_lock),
            )
    return matrix


def _backing(service: str) -> list[str]:
    return [component for component in USES[service] if component != "python"]


def _ci_processes() -> list[Process]:
    ports, management_ports = dict.fromkeys(process_types(), 1), dict.fromkeys(process_types(), 2)
    commands = process_commands(
        orders_database_url="postgresql://ci/orders",
        notifier_database_url="postgresql://ci/notifier",
        amqp_url="amqp://ci/",
        redis_url="redis://ci/0",
        smtp_url="smtp://ci:25",
        orders_web_url="http://ci:1",
        ports=ports,
        management_ports=management_ports,
        names=lambda name: name,
    )
    return [Process(name, argv[0], argv[1], None, env, tuple(argv[1:])) for name, (argv, env) in commands.items()]


def _maintenance(url: str) -> str:
    """A PostgreSQL URL's server, by its always-there database: the service's own may not exist yet."""
    return with_database(url, "postgres") if url.startswith("postgres") else url


def _probe(urls: dict[str, str]) -> dict[str, str]:
    async def ask() -> dict[str, str]:
        return {
            component: await server_version(component, url) if url else "? (no URL)" for component, url in urls.items()
        }

    return asyncio.run(ask())


def _compose_service(component: str) -> str:
    return {"postgresql": "postgres", "rabbitmq": "rabbitmq", "redis": "redis"}[component]


def _compose_python(spec: dict[str, Any], service: str) -> str:
    for definition in spec.values():
        build = definition.get("build") or {}
        if str(build.get("dockerfile", "")).startswith(f"services/{service}/"):
            return f"{version_in(str((build.get('args') or {}).get('PYTHON_IMAGE', ''))) or '?'} (PYTHON_IMAGE)"
    return "?"


def _lock_at(root: Path, revision: str) -> str:
    shown = subprocess.run(  # noqa: S603 - git on this repository
        [shutil.which("git") or "git", "show", f"{revision}:uv.lock"], cwd=root, capture_output=True, check=False
    )
    return (
        f"{lock_hash_of(shown.stdout)} (uv.lock at {revision})"
        if shown.returncode == 0
        else f"? (no uv.lock at {revision})"
    )


def _image_lock(images: list[str], root: Path, working_lock: str) -> str:
    """The lock hash the images carry if they are here to inspect; else what their tag says."""
    labels = {_label(image) for image in images}
    if len(labels) == 1 and (label := next(iter(labels))):
        return f"{label} (label of the local image{'s' if len(images) > 1 else ''})"
    if "" in labels:
        return "? (the local image carries no lock label: built before it had one; make images)"
    tags = {image.rsplit(":", 1)[-1] for image in images}
    for tag in tags:
        for candidate in (tag, f"v{tag}"):
            if _is_git_tag(root, candidate):
                return _lock_at(root, candidate)
    if tags == {"dev"}:
        return f"? (not built here; `make images` would build it from {working_lock})"
    return f"? (no image here to inspect, no git tag {', '.join(sorted(tags))})"


def _label(image: str) -> str | None:
    """The image's lock label; "" for a local image without one; None if the image is not here."""
    docker = shutil.which("docker")
    if docker is None:
        return None
    try:
        inspected = subprocess.run(  # noqa: S603 - docker image inspect of an image the deploy names
            [docker, "image", "inspect", "--format", "{{json .Config.Labels}}", image],
            capture_output=True,
            text=True,
            check=False,
            timeout=10,
        )
    except subprocess.TimeoutExpired:
        return None
    if inspected.returncode != 0:
        return None
    labels = json.loads(inspected.stdout or "null") or {}
    value = labels.get(LOCK_LABEL)
    return str(value) if value and value != "unknown" else ""


def _is_git_tag(root: Path, tag: str) -> bool:
    found = subprocess.run(  # noqa: S603 - git on this repository
        [shutil.which("git") or "git", "rev-parse", "--verify", "--quiet", f"refs/tags/{tag}"],
        cwd=root,
        capture_output=True,
        check=False,
    )
    return found.returncode == 0


def _venv_in_sync(root: Path) -> bool:
    uv = shutil.which("uv")
    if uv is None:
        return False
    checked = subprocess.run(  # noqa: S603 - uv on this repository
        [uv, "sync", "--locked", "--all-packages", "--check"], cwd=root, capture_output=True, check=False
    )
    return checked.returncode == 0
