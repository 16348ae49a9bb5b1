"""CPU time spent by groups of processes, read from /proc (Linux).

The pipeline's cost per order is the CPU its processes burn — Dozen's own, and the
PostgreSQL and RabbitMQ servers — divided by the orders they handled. PostgreSQL forks a
backend per connection and RabbitMQ runs in one Erlang VM, so those groups are found by
name; a process born during a window counts from zero, one that died is simply missing
(short-lived processes are rare here and the error is reported as such, not hidden).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")
PROC = Path("/proc")


def _stat(pid: int) -> tuple[str, float] | None:
    """(command name, user+system CPU seconds) of one process, or None if it is gone."""
    try:
        raw = (PROC / str(pid) / "stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # The name is in parentheses and may itself hold spaces or parentheses.
    name = raw[raw.index("(") + 1 : raw.rindex(")")]
    fields = raw[raw.rindex(")") + 2 :].split()
    # utime and stime are fields 14 and 15 of stat(5); fields[0] here is field 3.
    return name, (int(fields[11]) + int(fields[12])) / TICKS_PER_SECOND


def _all_pids() -> Iterable[int]:
    return (int(entry.name) for entry in PROC.iterdir() if entry.name.isdigit())


@dataclass(frozen=True)
class Group:
    name: str
    matches: Callable[[int, str], bool]


def postgres() -> Group:
    return Group("postgresql", lambda _pid, name: name.startswith(("postgres", "postmaster")))


def rabbitmq() -> Group:
    return Group("rabbitmq", lambda _pid, name: name in {"beam.smp", "erl_child_setup", "epmd"})


def pids(name: str, members: Iterable[int]) -> Group:
    chosen = frozenset(members)
    return Group(name, lambda pid, _name: pid in chosen)


def snapshot(groups: Iterable[Group]) -> dict[str, dict[int, float]]:
    """Per group, per pid: CPU seconds so far."""
    groups = list(groups)
    taken: dict[str, dict[int, float]] = {group.name: {} for group in groups}
    for pid in _all_pids():
        stat = _stat(pid)
        if stat is None:
            continue
        name, seconds = stat
        for group in groups:
            if group.matches(pid, name):
                taken[group.name][pid] = seconds
    return taken


def spent(before: dict[str, dict[int, float]], after: dict[str, dict[int, float]]) -> dict[str, float]:
    """CPU seconds each group spent between two snapshots."""
    return {
        group: sum(seconds - before.get(group, {}).get(pid, 0.0) for pid, seconds in now.items())
        for group, now in after.items()
    }
