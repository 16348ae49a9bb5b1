"""The fault suite's table: one row per scenario, printed after the run (and kept for CI)."""

from __future__ import annotations

import pytest

from tests.faults.invariants import OUTCOMES

COLUMNS = ("scenario", "accepted", "refused", "lost", "duplicated", "emailed twice", "recovered in", "also measured")


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
            outcome.lost,
            outcome.duplicated,
            outcome.emailed_twice,
            f"{outcome.recovered_seconds:.1f} s",
            outcome.note,
        )
        terminalreporter.write_line("| " + " | ".join(str(cell) for cell in cells) + " |")
