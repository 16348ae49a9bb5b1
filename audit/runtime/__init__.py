"""The factors shown by the running system: IV, V, VI, VII, VIII, IX, XI and XII.

One run of the whole of Dozen, built as its images are and every process observed, goes
through the steps below; each step records what it saw per factor and service. Then the
tests that prove a factor run against the same release, observed the same way
(audit.testrun), and the records every process left (its output, the files it wrote) are
judged once all are down.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import traceback
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path

from audit import progress
from audit.deploys import SERVICES
from audit.observe import ObservationUnavailable, Observer
from audit.release import Release, ReleaseUnavailable
from audit.runtime.arrival import check_arrivals
from audit.runtime.disposability import check_disposability
from audit.runtime.findings import Findings
from audit.runtime.records import judge_records
from audit.runtime.system import AuditedSystem, SystemUnavailable, audited_system, release_launcher
from audit.scorecard import Verdict
from audit.testrun import run_factor_tests

RUNTIME_FACTORS = ("IV", "V", "VI", "VII", "VIII", "IX", "XI", "XII")

Step = Callable[[AuditedSystem, Findings], Awaitable[None]]


async def _arrivals(system: AuditedSystem, findings: Findings) -> None:
    await check_arrivals(system, findings, list(system.stack.processes))


# In order; each names the factors it informs, so --factor runs only what it needs.
STEPS: list[tuple[tuple[str, ...], str, Step]] = [
    (("V", "VII"), "each process's ports and build", _arrivals),
    (("IX",), "start to ready and SIGTERM to exit, as deployed", check_disposability),
]
# Proved by the tests marked with them (audit.testrun), run against the release.
TESTED = ("IV", "VI", "VIII", "IX", "XII")
# Judged from what every process left, the tests' included, once all are down.
RECORDED = ("V", "VI", "XI")


def run_runtime(root: Path, environ: Mapping[str, str], only: set[str] | None) -> list[Verdict]:
    factors = [factor for factor in RUNTIME_FACTORS if only is None or factor in only]
    if not factors:
        return []
    findings = Findings()
    workdir = Path(tempfile.mkdtemp(prefix="dozen-audit-"))
    try:
        progress.step("the running system: the release built as the images are, every process started")
        ran = asyncio.run(_run_system(root, environ, workdir, factors, findings))
        if ran is not None:
            release, observer = ran
            tested = [factor for factor in TESTED if factor in factors]
            if tested:
                progress.step(f"the tests that prove {', '.join(tested)}, run against the release")
                run_factor_tests(root, release_launcher(release, observer), findings, tested)
            if any(factor in factors for factor in RECORDED):
                progress.step(f"what every process left: its output and the files it wrote ({', '.join(RECORDED)})")
                judge_records(observer.processes, release, findings)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return findings.verdicts(factors, SERVICES)


async def _run_system(
    root: Path, environ: Mapping[str, str], workdir: Path, factors: list[str], findings: Findings
) -> tuple[Release, Observer] | None:
    """The audit's own steps on one running system; the release and what observed it, once built."""
    ran = None
    try:
        async with audited_system(root, environ, workdir) as system:
            ran = system.release, system.observer
            for informs, description, step in STEPS:
                if any(factor in factors for factor in informs):
                    progress.step(f"{description} ({', '.join(informs)})")
                    await _run_step(step, informs, system, findings)
            progress.step("stopping every process")
    except (SystemUnavailable, ReleaseUnavailable, ObservationUnavailable) as error:
        _everything_failed(findings, factors, f"the system could not be run: {error}")
    except AssertionError as error:
        # harness.stack asserts: every one-off at start-up and every SIGTERM at the end exits 0.
        first_line = str(error).splitlines()[0]
        if ran is None or not ran[1].processes:
            _everything_failed(findings, factors, f"the system could not be started: {first_line}")
        for service in SERVICES:
            if service in first_line:
                findings.failed("IX", service, f"stopping the system: {first_line}")
    return ran


def _everything_failed(findings: Findings, factors: list[str], reason: str) -> None:
    for factor in factors:
        for service in SERVICES:
            findings.failed(factor, service, reason)


async def _run_step(step: Step, informs: tuple[str, ...], system: AuditedSystem, findings: Findings) -> None:
    try:
        await step(system, findings)
    except Exception as error:  # noqa: BLE001 - a step that could not finish is its factors' finding
        last = traceback.format_exception_only(error)[-1].strip()
        for factor in informs:
            for service in SERVICES:
                findings.failed(factor, service, f"{step.__name__.strip('_')} could not finish: {last}")
