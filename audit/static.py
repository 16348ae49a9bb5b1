"""The factors shown by the repository and its deploys as written: I, II, III, IV, V, VII, XII.

Each check returns one verdict per service; each reads the files through the tools that
apply them (compose, kustomize, uv, deptry), so a broken deploy fails here as it would there.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from audit.attached import backing_services
from audit.deploys import (
    OVERLAYS,
    PROCESS_SETTINGS,
    SERVICES,
    Process,
    SourceUnavailable,
    compose_processes,
    config_problems,
    dotenv_processes,
    k8s_processes,
)
from audit.images import build_release_run
from audit.release import lock_hash
from audit.scorecard import Verdict, verdict

BIN = Path(sys.executable).parent
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
LONG_RUNNING = {command for _, command in PROCESS_SETTINGS} - {"migrate"}


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise SourceUnavailable(f"{name} is not on PATH")
    return found


def deploys(root: Path) -> dict[str, list[Process]]:
    """Every environment Dozen's files define: name -> its processes. A developer's own .env
    (git-ignored, made by `make dev` from .env.example) is one of them when it exists."""
    found = {".env.example": dotenv_processes(root / ".env.example"), "compose": compose_processes(root)}
    if (root / ".env").exists():
        found[".env"] = dotenv_processes(root / ".env")
    for overlay in OVERLAYS:
        found[f"k8s {overlay}"] = k8s_processes(overlay, root)
    return found


def codebase(root: Path, all_deploys: dict[str, list[Process]]) -> list[Verdict]:
    """I: one codebase per app, one lockfile; every deploy runs the same image of it."""
    verdicts = []
    nested_locks = sorted(str(path.relative_to(root)) for path in root.glob("*/*/uv.lock"))
    locked = lock_hash(root)
    for service in SERVICES:
        failures, evidence = [], [f"services/{service}: its own pyproject and Dockerfile; one uv.lock ({locked})"]
        failures += [f"a second lockfile: {path}" for path in nested_locks]
        dockerfile = (root / "services" / service / "Dockerfile").read_text()
        if not re.search(r"^COPY [^\n]*\buv\.lock\b", dockerfile, re.MULTILINE) or "uv sync --locked" not in dockerfile:
            failures.append(f"services/{service}/Dockerfile does not install from uv.lock with --locked")
        failures += _commands_differ(service, all_deploys, evidence)
        for name, processes in all_deploys.items():
            images = {
                p.image.split(":")[0].rsplit("/", 2)[-2:][-1] for p in processes if p.service == service and p.image
            }
            repositories = {p.image.rsplit(":", 1)[0] for p in processes if p.service == service and p.image}
            if not repositories:
                continue
            if len(repositories) != 1 or images != {service}:
                failures.append(f"{name}: {service}'s processes run {sorted(repositories)}, not one image of it")
            else:
                evidence.append(f"{name}: every {service} process runs {repositories.pop()}")
        verdicts.append(verdict("I", service, failures, evidence))
    return verdicts


def _commands_differ(service: str, all_deploys: dict[str, list[Process]], evidence: list[str]) -> list[str]:
    """Deploys differ only by config: each long-running process type runs the same command in all."""
    commands: dict[str, dict[str, tuple[str, ...]]] = {}
    for name, processes in all_deploys.items():
        for process in processes:
            if process.service == service and process.command in LONG_RUNNING:
                commands.setdefault(process.command, {})[name] = process.arguments
    failures = []
    for command, by_deploy in sorted(commands.items()):
        if len(set(by_deploy.values())) > 1:
            failures.append(f"`{service} {command}` is run differently by the deploys: {by_deploy}")
        else:
            arguments = " ".join(next(iter(by_deploy.values())))
            evidence.append(f"`{service} {arguments}` is run alike by {', '.join(by_deploy)}")
    return failures


def dependencies(root: Path) -> list[Verdict]:
    """II: every import of each member declared in its own pyproject; the lockfile in sync."""
    lock = subprocess.run(  # noqa: S603 - uv on this repository
        [_tool("uv"), "lock", "--check"], cwd=root, capture_output=True, text=True, check=False
    )
    lock_line = "uv lock --check: in sync" if lock.returncode == 0 else None
    verdicts = []
    for service in SERVICES:
        failures = [] if lock_line else [f"uv lock --check failed: {lock.stderr.strip()[-300:]}"]
        evidence = [lock_line] if lock_line else []
        for member, package in ((f"services/{service}", service), ("libs/shared", "shared")):
            found = subprocess.run(  # noqa: S603 - deptry on a member of this repository
                # Runtime imports only: tests and benchmarks are dev tools, declared as such.
                [str(BIN / "deptry"), ".", "--known-first-party", package, "--extend-exclude", "tests|benchmarks"],
                cwd=root / member,
                capture_output=True,
                text=True,
                check=False,
                env={"NO_COLOR": "1", "PATH": str(BIN)},
            )
            output = _ANSI.sub("", found.stdout + found.stderr)
            issues = [line for line in output.splitlines() if "DEP0" in line]
            if found.returncode != 0:
                failures += [f"deptry {member}: {issue}" for issue in issues] or [f"deptry {member} failed"]
            else:
                evidence.append(f"deptry {member}: every import declared, no declared package unused")
        verdicts.append(verdict("II", service, failures, evidence))
    return verdicts


def config(root: Path, all_deploys: dict[str, list[Process]]) -> list[Verdict]:
    """III: each deploy gives each process exactly what its settings accept; no secret in the repo."""
    secrets = _secrets_scan(root)
    verdicts = []
    for service in SERVICES:
        failures, evidence = list(secrets[0]), list(secrets[1])
        for name, processes in all_deploys.items():
            checked = 0
            for process in (p for p in processes if p.service == service):
                settings_cls = PROCESS_SETTINGS[service, process.command]
                problems = config_problems(settings_cls, process.environment)
                failures += [f"{name} {process.name}: {problem}" for problem in problems]
                checked += 1
            evidence.append(f"{name}: {checked} {service} process types, each environment accepted by its settings")
        verdicts.append(verdict("III", service, failures, evidence))
    return verdicts


def _secrets_scan(root: Path) -> tuple[list[str], list[str]]:
    files = subprocess.run(  # noqa: S603 - git on this repository
        [_tool("git"), "ls-files"], cwd=root, capture_output=True, text=True, check=True
    ).stdout.split()
    scanned = [path for path in files if path != ".env.example"]
    found = subprocess.run(  # noqa: S603 - detect-secrets on the repository's files
        [str(BIN / "detect-secrets-hook"), *scanned], cwd=root, capture_output=True, text=True, check=False
    )
    if found.returncode != 0:
        return [f"secrets scan: {line}" for line in found.stdout.splitlines() if line.strip()][:10], []
    return [], [f"secrets scan (detect-secrets) of {len(scanned)} tracked files: no secret literal"]


def port_binding(root: Path, all_deploys: dict[str, list[Process]]) -> list[Verdict]:
    """VII (as deployed): no port has a default; every deploy gives each process its own."""
    verdicts = []
    for service in SERVICES:
        failures, evidence = [], []
        for (owner, command), settings_cls in PROCESS_SETTINGS.items():
            if owner != service or command not in LONG_RUNNING:
                continue
            port = settings_cls.model_fields.get("port")
            if port is None or not port.is_required():
                failures.append(f"{service} {command}: its port is not a required setting")
            # An API's probes and metrics have a port of their own, required just the same.
            for field_name in [name for name in ("port", "management_port") if name in settings_cls.model_fields]:
                variable = settings_cls.variable_names()[field_name]
                if settings_cls.model_fields[field_name].is_required():
                    evidence.append(f"{service} {command}: {variable} required, no default")
                elif field_name != "port":
                    failures.append(f"{service} {command}: {variable} is not a required setting")
        for name, processes in all_deploys.items():
            for process in (p for p in processes if p.service == service and p.command in LONG_RUNNING):
                if f"{service.upper()}_PORT" not in process.environment:
                    failures.append(f"{name} {process.name}: no {service.upper()}_PORT given")
        failures += _hard_coded_ports(root / "services" / service / "src")
        verdicts.append(verdict("VII", service, failures, evidence))
    return verdicts


def _hard_coded_ports(source: Path) -> list[str]:
    # A listening call given a literal port number instead of its setting.
    pattern = re.compile(r"(TCPSite|run_app|serve|start_server)\([^)]*\b\d{2,5}\b")
    return [
        f"{path.relative_to(source.parents[2])}: a literal port in {match.group(0)!r}"
        for path in source.rglob("*.py")
        for match in pattern.finditer(path.read_text())
    ]


def admin_processes(all_deploys: dict[str, list[Process]]) -> list[Verdict]:
    """XII (as deployed): each migrate one-off runs the service's own image with its config."""
    verdicts = []
    for service in SERVICES:
        failures, evidence = [], []
        for name, processes in all_deploys.items():
            mine = [p for p in processes if p.service == service]
            one_offs = [p for p in mine if p.command == "migrate"]
            long_running = [p for p in mine if p.command != "migrate"]
            for one_off in one_offs:
                images = {p.image for p in long_running}
                if images != {one_off.image}:
                    failures.append(f"{name} {one_off.name}: image {one_off.image}, the processes run {images}")
                shared = _differing(one_off, long_running)
                if shared:
                    failures.append(f"{name} {one_off.name}: configured differently: {shared}")
                else:
                    evidence.append(f"{name}: {one_off.name} runs {one_off.image} with the processes' own values")
        if not evidence and not failures:
            evidence.append("no one-off in the deploys (its admin commands are checked when run)")
        verdicts.append(verdict("XII", service, failures, evidence))
    return verdicts


def _differing(one_off: Process, others: list[Process]) -> list[str]:
    """Variables the one-off shares with a long-running process, but with another value."""
    return sorted(
        {
            variable
            for other in others
            for variable, value in one_off.environment.items()
            if variable in other.environment and other.environment[variable] != value and not variable.endswith("_PORT")
        }
    )


STATIC_CHECKS: dict[str, Callable[[Path, dict[str, list[Process]]], list[Verdict]]] = {
    "I": codebase,
    "II": lambda root, _: dependencies(root),
    "III": config,
    "IV": lambda root, _: backing_services(root),
    "V": lambda root, _: build_release_run(root),
    "VII": port_binding,
    "XII": lambda _, all_deploys: admin_processes(all_deploys),
}


def run_static(root: Path, only: set[str] | None = None) -> list[Verdict]:
    try:
        all_deploys = deploys(root)
    except SourceUnavailable as error:
        return [
            Verdict(factor, service, False, [f"cannot read the deploys: {error}"])
            for factor in STATIC_CHECKS
            if only is None or factor in only
            for service in SERVICES
        ]
    verdicts = []
    for factor, check in STATIC_CHECKS.items():
        if only is None or factor in only:
            verdicts += check(root, all_deploys)
    return verdicts
