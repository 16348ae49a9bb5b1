"""What the runtime audit sees, per factor and service, until it is judged into verdicts."""

from __future__ import annotations

from collections.abc import Iterable

from audit.scorecard import Verdict, verdict


class Findings:
    def __init__(self) -> None:
        self._failures: dict[tuple[str, str], list[str]] = {}
        self._evidence: dict[tuple[str, str], list[str]] = {}

    def saw(self, factor: str, service: str, line: str) -> None:
        self._evidence.setdefault((factor, service), []).append(line)

    def failed(self, factor: str, service: str, line: str) -> None:
        self._failures.setdefault((factor, service), []).append(line)

    def judge(self, factor: str, service: str, failures: Iterable[str], evidence: str) -> None:
        """Record ``failures`` if there are any, else ``evidence``."""
        found = list(failures)
        for failure in found:
            self.failed(factor, service, failure)
        if not found:
            self.saw(factor, service, evidence)

    def verdicts(self, factors: Iterable[str], services: Iterable[str]) -> list[Verdict]:
        """One verdict per factor and service; a cell nothing was seen for fails, saying so."""
        verdicts = []
        for factor in factors:
            for service in services:
                cell = (factor, service)
                failures = self._failures.get(cell, [])
                evidence = self._evidence.get(cell, [])
                if not failures and not evidence:
                    failures = ["nothing was observed for this check (an earlier step failed?)"]
                verdicts.append(verdict(factor, service, failures, evidence))
        return verdicts
