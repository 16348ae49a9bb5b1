"""The release the runtime audit runs (factor V), built here the way each image is built.

Each service's Dockerfile is read as Docker reads it (dockerfile-parse): its build stage's
own `uv sync` line runs with that stage's uv settings, from the one uv.lock, into an
install of the service's own (the image's /app/.venv); its final stage's ENV (the release
id, PYTHONDONTWRITEBYTECODE, ...) is what every process of the image starts with. Config
joins at run time. So the audited processes are the release, not this checkout's
editable install, and a Dockerfile that changes how it builds changes what is audited.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from dockerfile_parse import DockerfileParser

from audit.deploys import SERVICES
from audit.images import stages


class ReleaseUnavailable(RuntimeError):
    """The release could not be built: the runtime checks cannot run."""


@dataclass(frozen=True)
class ServiceBuild:
    service: str
    # The service's virtualenv: /app/.venv in its image.
    install: Path
    # The image's ENV, PATH aside (the install's bin/ plays its part here).
    image_environment: dict[str, str]

    @property
    def executable(self) -> Path:
        return self.install / "bin" / self.service


@dataclass(frozen=True)
class Release:
    id: str
    lock_hash: str
    builds: dict[str, ServiceBuild]


def current_release_id(root: Path, environ: dict[str, str]) -> str:
    """RELEASE_ID as the Makefile exports it (git describe), or git describe itself."""
    if environ.get("RELEASE_ID"):
        return environ["RELEASE_ID"]
    described = subprocess.run(  # noqa: S603 - git on this repository
        [_tool("git"), "describe", "--always", "--dirty", "--abbrev=12"],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    )
    return described.stdout.strip() or "dev"


def lock_hash_of(lockfile: bytes) -> str:
    """What names a dependency lock, in Python (as `make`'s LOCK_HASH does for the image builds)."""
    return hashlib.sha256(lockfile).hexdigest()[:12]


def lock_hash(root: Path) -> str:
    return lock_hash_of((root / "uv.lock").read_bytes())


def build_release(root: Path, into: Path, release_id: str) -> Release:
    """Every service built as its Dockerfile builds it, into ``into/<service>``."""
    builds = {}
    for service in SERVICES:
        dockerfile = DockerfileParser(
            str(root / "services" / service / "Dockerfile"), build_args={"RELEASE_ID": release_id}
        )
        install = into / service
        _run_build_stage(root, dockerfile, install)
        environment = {name: value for name, value in dockerfile.envs.items() if name != "PATH"}
        builds[service] = ServiceBuild(service, install, environment)
    return Release(release_id, lock_hash(root), builds)


def _run_build_stage(root: Path, dockerfile: DockerfileParser, install: Path) -> None:
    build_stage = stages(dockerfile)[0]
    syncs = [
        command
        for instruction, value in build_stage
        if instruction == "RUN"
        for command in [shlex.split(value)]
        if Path(command[0]).name == "uv" and command[1:2] == ["sync"]
    ]
    if not syncs:
        raise ReleaseUnavailable(f"{dockerfile.dockerfile_path}: its build stage runs no `uv sync`")
    # The last sync installs everything; the earlier one only warms a layer of dependencies.
    command = [_tool("uv"), *syncs[-1][1:]]
    stage_environment = {
        name: value
        for instruction, value in build_stage
        if instruction == "ENV"
        for name, value in _pairs(value).items()
    }
    environment = {name: value for name, value in os.environ.items() if name != "VIRTUAL_ENV"}
    environment |= stage_environment | {"UV_PROJECT_ENVIRONMENT": str(install)}
    built = subprocess.run(  # noqa: S603 - the Dockerfile's own uv sync line, on this repository
        command, cwd=root, env=environment, capture_output=True, text=True, check=False
    )
    if built.returncode != 0:
        raise ReleaseUnavailable(f"{shlex.join(command)} failed: {built.stderr.strip()[-500:]}")


def _pairs(value: str) -> dict[str, str]:
    """``A=1 B="two words"`` as Docker's ENV reads it."""
    return dict(pair.split("=", 1) for pair in shlex.split(value))


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise ReleaseUnavailable(f"{name} is not on PATH")
    return found
