"""IX: fast start-up, graceful shutdown, as deployed. Three more instances of each process type
— same release, same config — are started and stopped, without the tracer. Measured: start
to ready (goal: within 1 s, the median of the three, the backing services answering) and
SIGTERM to exit (goal: within 5 s); the drain each deploy configures comes on top of the
measured exit. (That work in flight across a SIGTERM finishes is tests/test_disposability.py.)

The goals are reported, met or not, never judged: on a shared machine a second is not
stable from run to run. What fails is what is wrong whatever the machine's load: a non-zero
exit, a process still running at the deadline (killed), a start slower than
READY_LIMIT_SECONDS, or a drain plus exit past the orchestrator's kill deadline."""

from __future__ import annotations

import statistics
import time

from audit.runtime.findings import Findings
from audit.runtime.system import AuditedSystem
from audit.static import deploys
from harness.inflight import Stop, graceful_stop
from harness.procfile import process_types
from harness.stack import allot_ports, port_env
from shared.config import MAX_SHUTDOWN_BUDGET_SECONDS
from shared.testing import ServiceProcess, eventually, is_ready

READY_GOAL_SECONDS = 1.0
EXIT_GOAL_SECONDS = 5.0
# Ten times the goal: slower than this is not the machine's load but the process.
READY_LIMIT_SECONDS = 10.0
STARTS = 3


async def started_until_ready(process: ServiceProcess, port: int) -> float:
    """Seconds from starting ``process`` until its /readyz answers 200."""
    began = time.monotonic()
    await process.start()
    await eventually(lambda: is_ready(port), timeout_seconds=30, interval_seconds=0.01, description="ready")
    return time.monotonic() - began


def judge_stop(stop: Stop) -> list[str]:
    problems = list(stop.problems)
    if stop.code is None:
        problems.append(f"still running {stop.seconds:.1f} s after SIGTERM: killed")
    elif stop.code != 0:
        problems.append(f"exited {stop.code} on SIGTERM")
    return problems


def judge_starts(seconds: list[float], limit_seconds: float = READY_LIMIT_SECONDS) -> list[str]:
    median = statistics.median(seconds)
    if median <= limit_seconds:
        return []
    return [f"ready {median:.2f} s after start (median of {_listed(seconds)}; at most {limit_seconds:g} s)"]


def against_goal(seconds: float, goal_seconds: float) -> str:
    return f"goal {goal_seconds:g} s {'met' if seconds <= goal_seconds else 'missed'}"


def _listed(seconds: list[float]) -> str:
    return " / ".join(f"{value:.2f}" for value in seconds)


async def check_disposability(system: AuditedSystem, findings: Findings) -> None:
    slowest_exit: dict[str, float] = {}
    for name in process_types():
        service = system.process(name).service
        starts, stops = [], []
        for _ in range(STARTS):
            ready, stop = await _start_and_stop_as_deployed(system, name)
            starts.append(ready)
            stops.append(stop)
        slowest_exit[name] = max(stop.seconds for stop in stops)
        findings.judge(
            "IX",
            service,
            [f"{name}: {problem}" for stop in stops for problem in judge_stop(stop)]
            + [f"{name}: {problem}" for problem in judge_starts(starts)],
            f"{name}: ready {_listed(starts)} s after start (median {statistics.median(starts):.2f} s, "
            f"{against_goal(statistics.median(starts), READY_GOAL_SECONDS)}), then SIGTERM to exit 0 in "
            f"{_listed([stop.seconds for stop in stops])} s ({against_goal(slowest_exit[name], EXIT_GOAL_SECONDS)})",
        )
    _judge_deployed_drains(system, findings, slowest_exit)


async def _start_and_stop_as_deployed(system: AuditedSystem, name: str) -> tuple[float, Stop]:
    """Another instance of ``name`` — same release, same config, a port of its own — run as
    deployed, without the tracer (which slows every file it opens, imports included): the
    start-up it measures is the process's own. Then SIGTERM, idle."""
    process, kind = system.process(name), system.kind(name)
    port, management_port = allot_ports(kind)
    instance = ServiceProcess(
        [str(process.executable), *process.arguments], env=process.env | port_env(kind, port, management_port)
    )
    try:
        ready = await started_until_ready(instance, management_port)
        return ready, await graceful_stop(instance, None)
    finally:
        await instance.stop()


def _judge_deployed_drains(system: AuditedSystem, findings: Findings, slowest_exit: dict[str, float]) -> None:
    """Each deploy's SHUTDOWN_DRAIN_SECONDS is a wait it adds before the listener closes."""
    kinds = process_types()
    measured = {(kinds[name].service, kinds[name].command): seconds for name, seconds in slowest_exit.items()}
    for deploy, processes in deploys(system.root).items():
        for service in {process.service for process in processes}:
            mine = [process for process in processes if (process.service, process.command) in measured]
            if not any(process.service == service for process in mine):
                continue
            drain = max(
                float(process.environment.get(f"{service.upper()}_SHUTDOWN_DRAIN_SECONDS", "0"))
                for process in mine
                if process.service == service
            )
            slowest = max(seconds for (owner, _), seconds in measured.items() if owner == service)
            total = drain + slowest
            line = (
                f"{deploy}: drain {drain:g} s + slowest exit {slowest:.2f} s = {total:.2f} s from SIGTERM to exit "
                f"({against_goal(total, EXIT_GOAL_SECONDS)})"
            )
            # Past the shutdown budget the orchestrator's kill comes first, whatever the machine.
            problems = (
                [f"{line}: past the {MAX_SHUTDOWN_BUDGET_SECONDS:g} s budget"]
                if total > MAX_SHUTDOWN_BUDGET_SECONDS
                else []
            )
            findings.judge("IX", service, problems, line)
