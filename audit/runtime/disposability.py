"""IX: fast start-up, graceful shutdown. Each process type is stopped with SIGTERM while work
is held in flight in it (inflight.py) and started again, observed as before; then three more
instances of it — same release, same config — are started and stopped as deployed, without
the tracer. Measured: SIGTERM to exit (goal: within 5 s, with the work in flight finished)
and start to ready (goal: within 1 s, the median of the three, the backing services answering);
the drain each deploy configures comes on top of the measured exit.

The goals are reported, met or not, never judged: on a shared machine a second is not
stable from run to run. What fails is what is wrong whatever the machine's load: work in
flight dropped, a non-zero exit, a process still running at the deadline (killed), a start
slower than READY_LIMIT_SECONDS, or a drain plus exit past the orchestrator's kill deadline."""

from __future__ import annotations

import asyncio
import signal
import statistics
import time
from dataclasses import dataclass

from audit.runtime.findings import Findings
from audit.runtime.inflight import HELD, HOLDS, InFlight
from audit.runtime.system import AuditedSystem
from audit.static import deploys
from harness.procfile import process_types
from shared.config import MAX_SHUTDOWN_BUDGET_SECONDS
from shared.testing import ServiceProcess, eventually, free_port, is_ready

READY_GOAL_SECONDS = 1.0
EXIT_GOAL_SECONDS = 5.0
# Ten times the goal: slower than this is not the machine's load but the process.
READY_LIMIT_SECONDS = 10.0
# A process still running this long after SIGTERM is killed, and its stop judged failed.
EXIT_DEADLINE_SECONDS = 15.0
STARTS = 3


@dataclass(frozen=True)
class Stop:
    code: int | None  # None: it had to be killed
    seconds: float
    problems: list[str]


def shutdown_begun(process: ServiceProcess) -> bool:
    return process.returncode is not None or any(
        record.get("message") == "shutdown requested" for record in process.records
    )


async def graceful_stop(
    process: ServiceProcess, in_flight: InFlight | None, *, deadline_seconds: float = EXIT_DEADLINE_SECONDS
) -> Stop:
    """SIGTERM, with ``in_flight`` work waiting in the process until it has begun to shut down."""
    if in_flight is not None:
        await eventually(in_flight.started, timeout_seconds=15, description=f"{in_flight.what} in flight")
    began = time.monotonic()
    process.send_signal(signal.SIGTERM)
    if in_flight is not None:
        # The work is let go only once the shutdown is under way, so it is in flight across it.
        try:
            await eventually(lambda: shutdown_begun(process), timeout_seconds=deadline_seconds, description="shutdown")
        finally:
            await in_flight.release()
    try:
        code: int | None = await process.wait(timeout_seconds=max(0.1, deadline_seconds - (time.monotonic() - began)))
    except TimeoutError:
        await process.stop()
        code = None
    seconds = time.monotonic() - began
    return Stop(code, seconds, await in_flight.finished() if in_flight is not None else [])


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
    stack = system.stack
    tokens = list(await asyncio.gather(*(stack.token(f"audit-ix-{number}") for number in range(HELD))))
    slowest_exit: dict[str, float] = {}
    for name, hold in HOLDS.items():
        service = system.process(name).service
        async with hold(system, tokens) as in_flight:
            stops = [await graceful_stop(system.process(name), in_flight)]
        traced_start = await _restart(system, name)
        starts = []
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
            f"{name}: SIGTERM with {in_flight.what} in flight: all finished, exit 0 in {stops[0].seconds:.2f} s; "
            f"ready {_listed(starts)} s after start (median {statistics.median(starts):.2f} s, "
            f"{against_goal(statistics.median(starts), READY_GOAL_SECONDS)}), then exit "
            f"{_listed([stop.seconds for stop in stops[1:]])} s "
            f"({against_goal(max(stop.seconds for stop in stops), EXIT_GOAL_SECONDS)}); "
            f"under strace, ready {traced_start:.2f} s",
        )
    _judge_deployed_drains(system, findings, slowest_exit)


async def _restart(system: AuditedSystem, name: str) -> float:
    """Start ``name`` again, observed like every process the system keeps; seconds to ready."""
    successor = system.process(name).twin()
    system.stack.processes[name] = successor
    return await started_until_ready(successor, system.stack.ports[name])


async def _start_and_stop_as_deployed(system: AuditedSystem, name: str) -> tuple[float, Stop]:
    """Another instance of ``name`` — same release, same config, a port of its own — run as
    deployed, without the tracer (which slows every file it opens, imports included): the
    start-up it measures is the process's own. Then SIGTERM, idle."""
    process = system.process(name)
    port = free_port()
    instance = ServiceProcess(
        [str(process.executable), *process.arguments], env=process.env | {system.port_variable(name): str(port)}
    )
    try:
        ready = await started_until_ready(instance, port)
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
