"""Verdicts, one per service and factor, with the evidence that decided them."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

FACTORS = {
    "I": "Codebase",
    "II": "Dependencies",
    "III": "Config",
    "IV": "Backing services",
    "V": "Build, release, run",
    "VI": "Processes",
    "VII": "Port binding",
    "VIII": "Concurrency",
    "IX": "Disposability",
    "X": "Dev/prod parity",
    "XI": "Logs",
    "XII": "Admin processes",
}


@dataclass(frozen=True)
class Verdict:
    factor: str
    service: str
    passed: bool
    evidence: list[str] = field(default_factory=list)


def verdict(factor: str, service: str, failures: list[str], evidence: list[str]) -> Verdict:
    """PASS with the evidence when nothing failed; FAIL with the failures alone (the claims
    the evidence makes would not hold then)."""
    return Verdict(factor, service, not failures, failures or evidence)


def merged(verdicts: list[Verdict]) -> list[Verdict]:
    """One verdict per factor and service: a cell checked both statically and at run time
    passes only if both did; the failing part's lines come first."""
    cells: dict[tuple[str, str], list[Verdict]] = {}
    for found in verdicts:
        cells.setdefault((found.factor, found.service), []).append(found)
    combined = []
    for (factor, service), parts in cells.items():
        ordered = sorted(parts, key=lambda part: part.passed)
        combined.append(
            Verdict(
                factor,
                service,
                all(part.passed for part in parts),
                [line for part in ordered for line in part.evidence],
            )
        )
    return combined


def table(verdicts: list[Verdict], services: tuple[str, ...]) -> str:
    by_cell = {(v.factor, v.service): v for v in verdicts}
    factors = [factor for factor in FACTORS if any(v.factor == factor for v in verdicts)]
    lines = ["| factor | " + " | ".join(services) + " |", "|---|" + "---|" * len(services)]
    for factor in factors:
        cells = []
        for service in services:
            found = by_cell.get((factor, service))
            cells.append("—" if found is None else ("PASS" if found.passed else "**FAIL**"))
        lines.append(f"| {factor} {FACTORS[factor]} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def evidence(verdicts: list[Verdict]) -> str:
    lines = []
    for found in verdicts:
        lines.append(f"{found.factor} {FACTORS[found.factor]} · {found.service}: {'PASS' if found.passed else 'FAIL'}")
        lines.extend(f"    {line}" for line in found.evidence)
    return "\n".join(lines)


def as_json(verdicts: list[Verdict], not_audited: list[str]) -> str:
    return json.dumps(
        {
            "passed": all(found.passed for found in verdicts),
            "verdicts": [asdict(found) for found in verdicts],
            "not_audited": not_audited,
        },
        indent=2,
    )
