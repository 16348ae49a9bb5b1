"""The fault suite's report: a line per scenario as it ends, and their table after the run (kept for CI)."""

from __future__ import annotations

import time

import pytest

from harness.invariants import OUTCOMES

COLUMNS = (
    "scenario",
    "accepted",
    "refused",
    "retried (unknown)",
    "lost",
    "duplicated",
    "unexpected",
    "emailed twice (allowed)",
    "recovered in",
    "also measured",
)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not OUTCOMES:
        return
    terminalreporter.section("fault scenarios")
    terminalreporter.write_line("| " + " | ".join(COLUMNS) + " |")
    terminalreporter.write_line("|" + "---|" * len(COLUMNS))
    for outcome in OUTCOMES:
        cells = (
            outcome.scenario,
            outcome.accepted,
            outcome.refused,
            outcome.retried,
            outcome.lost,
            outcome.duplicated,
            outcome.unexpected,
            f"{outcome.emailed_twice} ({outcome.may_email_twice})",
            f"{outcome.recovered_seconds:.1f} s",
            outcome.note,
        )
        terminalreporter.write_line("| " + " | ".join(str(cell) for cell in cells) + " |")


class Progress:
    """Each scenario's outcome the moment it is known: the suite runs for minutes."""

    def __init__(self, config: pytest.Config) -> None:
        self._config = config
        self._began = time.monotonic()
        self._reported = 0

    def pytest_runtest_logfinish(self, nodeid: str) -> None:
        # Looked up now: the terminal reporter registers after this conftest is configured.
        reporter = self._config.pluginmanager.get_plugin("terminalreporter")
        if reporter is None:
            return
        for outcome in OUTCOMES[self._reported :]:
            reporter.write_line(
                f"  [{time.monotonic() - self._began:4.0f} s] {outcome.scenario}: accepted {outcome.accepted}, "
                f"lost {outcome.lost}, duplicated {outcome.duplicated}, unexpected {outcome.unexpected}, "
                f"emailed twice {outcome.emailed_twice} ({outcome.may_email_twice} allowed), "
                f"recovered in {outcome.recovered_seconds:.1f} s (the last order {outcome.stages})"
            )
        self._reported = len(OUTCOMES)


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(Progress(config), "fault-progress")
