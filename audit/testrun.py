"""The tests that prove a factor, run against the release and read as the audit's evidence.

A test proves a factor by its marker, ``@pytest.mark.factor("VI", "orders")`` (all three
services when none is named). `make audit` runs every such test with pytest, in this process,
with Dozen launched from the release it built and under its observation, so what those
processes write and print is judged with the rest; each test's outcome is a finding of its
factor: passed, or failed with the reason pytest gave.
"""

from __future__ import annotations

import sys
from collections.abc import Generator
from pathlib import Path

import pytest

from audit import progress
from audit.deploys import SERVICES
from audit.runtime.findings import Findings
from harness.stack import LAUNCH, Launch

MARKER = "factor"


class FactorReport:
    """A pytest plugin: launches Dozen the audit's way, and keeps each factor test's outcome."""

    def __init__(self, launch: Launch, findings: Findings) -> None:
        self._launch = launch
        self._findings = findings

    def pytest_configure(self, config: pytest.Config) -> None:
        config.stash[LAUNCH] = self._launch

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        report = yield
        # A test is judged once: by its call, or by a setup or teardown that failed.
        if report.when == "call" or report.failed:
            for marker in item.iter_markers(MARKER):
                factor, *services = marker.args
                unknown = [service for service in services if service not in SERVICES]
                for service in SERVICES if unknown else services or SERVICES:
                    if unknown:
                        # A proof of nothing the scorecard has a cell for would pass unseen.
                        self._findings.failed(factor, service, f"{item.nodeid} names no service: {unknown}")
                    else:
                        self._judge(factor, service, item.nodeid, report)
            progress.step(f"{report.outcome}: {item.nodeid}" + ("" if report.when == "call" else f" ({report.when})"))
            if report.failed:
                # The whole story once, on stderr with the progress: processes' own output included.
                print(report.longreprtext, file=sys.stderr, flush=True)
        return report

    def _judge(self, factor: str, service: str, test: str, report: pytest.TestReport) -> None:
        if report.passed:
            self._findings.saw(factor, service, f"{test} passed ({report.duration:.0f} s)")
        else:
            crash = getattr(report.longrepr, "reprcrash", None)
            reason = str(crash.message if crash else report.longrepr or report.outcome).strip().splitlines()[0]
            self._findings.failed(factor, service, f"{test} {report.outcome} in {report.when}: {reason}")


def run_factor_tests(root: Path, launch: Launch, findings: Findings, factors: list[str]) -> None:
    """Every test marked with one of ``factors``, Dozen launched by ``launch``."""
    code = pytest.main(
        [str(root / "tests"), "-c", str(root / "pyproject.toml"), "-p", "no:cacheprovider", "-p", "no:terminal"],
        plugins=[_Selection(set(factors)), FactorReport(launch, findings)],
    )
    # 5: none selected, which leaves the factors' cells empty, and so failed, for what they are.
    if code not in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED, pytest.ExitCode.NO_TESTS_COLLECTED):
        for factor in factors:
            for service in SERVICES:
                findings.failed(factor, service, f"the tests proving it could not run: pytest exited {code}")


class _Selection:
    """Only the tests that prove one of ``factors``."""

    def __init__(self, factors: set[str]) -> None:
        self._factors = factors

    def pytest_collection_modifyitems(self, config: pytest.Config, items: list[pytest.Item]) -> None:
        proving = [item for item in items if {m.args[0] for m in item.iter_markers(MARKER)} & self._factors]
        config.hook.pytest_deselected(items=[item for item in items if item not in proving])
        items[:] = proving
