"""End-to-end tests: every Dozen process as a real OS process. Figures are reported at the end."""

from __future__ import annotations

import pytest

pytest_plugins = ["shared.testing.plugin"]

# What the tests measured, printed after the run (latencies are reported, never asserted).
FIGURES: list[str] = []


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if FIGURES:
        terminalreporter.section("measured")
        for line in FIGURES:
            terminalreporter.write_line(line)
