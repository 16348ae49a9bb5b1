"""Dozen's process types, read from the Procfile: the one place they are written down.

A Dozen line reads ``<name>: exec env <SERVICE>_PORT=$DEV_… <service> <command…>``: the
service's console script with its command, told its port through its own variable (and an
API process its probes' and metrics' port too: ``<SERVICE>_MANAGEMENT_PORT=$DEV_…``). The
lines' order is the start order. Lines whose program is no Dozen service (the development
SMTP sink) are not Dozen's process types.
"""

from __future__ import annotations

import functools
import re
import shlex
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path

from honcho.environ import parse_procfile

# An editable install (`uv sync`): the harness runs only from a checkout.
ROOT = Path(__file__).resolve().parents[4]
PROCFILE = ROOT / "Procfile"
_ASSIGNMENT = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=(.*)$")


class ProcfileError(ValueError):
    """A Procfile line that does not say what a Dozen process type must."""


@dataclass(frozen=True)
class ProcessType:
    name: str
    service: str
    # The command and its arguments after the service's console script: ("worker",).
    arguments: tuple[str, ...]
    port_variable: str
    # Where an API process serves its probes and metrics (None: on its one port, a worker's).
    management_variable: str | None
    # The variables the line sets itself, unexpanded ({"ORDERS_PORT": "$DEV_ORDERS_WEB_PORT"}).
    assignments: Mapping[str, str]

    @property
    def command(self) -> str:
        return self.arguments[0]


def services(root: Path = ROOT) -> tuple[str, ...]:
    """Dozen's services: the workspace members under services/."""
    return tuple(sorted(path.parent.name for path in (root / "services").glob("*/pyproject.toml")))


def parse(text: str, known_services: Collection[str]) -> dict[str, ProcessType]:
    """Each Dozen process type of a Procfile's ``text``, in the file's order."""
    kinds = {}
    for name, line in parse_procfile(text).processes.items():
        words = [word for word in shlex.split(line) if word not in {"exec", "env"}]
        assignments = {match[1]: match[2] for word in words if (match := _ASSIGNMENT.match(word))}
        program, *arguments = [word for word in words if not _ASSIGNMENT.match(word)] or [""]
        if program not in known_services:
            continue
        port_variable = f"{program.upper()}_PORT"
        if port_variable not in assignments:
            raise ProcfileError(f"Procfile {name}: {program} must be told its port: env {port_variable}=…")
        if not arguments:
            raise ProcfileError(f"Procfile {name}: {program} needs a command (web, worker, …)")
        management_variable = f"{program.upper()}_MANAGEMENT_PORT"
        kinds[name] = ProcessType(
            name,
            program,
            tuple(arguments),
            port_variable,
            management_variable if management_variable in assignments else None,
            assignments,
        )
    if not kinds:
        raise ProcfileError(f"the Procfile names none of Dozen's services ({', '.join(known_services)})")
    return kinds


@functools.cache
def process_types() -> dict[str, ProcessType]:
    """Dozen's long-running process types, in start order: ``{"orders-worker": ProcessType(…), …}``."""
    return parse(PROCFILE.read_text(), services())


def of_service(service: str) -> list[str]:
    """The names of one service's process types, in start order."""
    return [name for name, kind in process_types().items() if kind.service == service]
