"""`make parity`: how far apart Dozen's environments are. A matrix, service by environment
(local, CI, compose, k8s dev, k8s prod), of the variable names each gives, the image (or
source) it runs, the backing services' versions, Python and the dependency lock hash — as
tables and as JSON — followed by every drift found, in words. It reports; `make audit`
(factors III and X) is what fails on drift that matters.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import asdict
from pathlib import Path

from audit.deploys import ROOT, SERVICES, SourceUnavailable
from audit.environments import ENVIRONMENTS, Matrix, View, collect


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def tables(matrix: Matrix) -> str:
    header = [_row(["service", *ENVIRONMENTS]), "|---|" + "---|" * len(ENVIRONMENTS)]
    out = []
    sections: list[tuple[str, list[tuple[str, list[str]]]]] = [
        ("variables given (count)", [(s, [str(len(matrix[e][s].variables)) for e in ENVIRONMENTS]) for s in SERVICES]),
        ("image", [(s, [matrix[e][s].image for e in ENVIRONMENTS]) for s in SERVICES]),
        (
            "backing services",
            [
                (f"{s} {component}", [matrix[e][s].backing[component] for e in ENVIRONMENTS])
                for s in SERVICES
                for component in matrix["local"][s].backing
            ],
        ),
        ("Python", [(s, [matrix[e][s].python for e in ENVIRONMENTS]) for s in SERVICES]),
        ("dependency lock hash (uv.lock)", [(s, [matrix[e][s].lock for e in ENVIRONMENTS]) for s in SERVICES]),
    ]
    for title, rows in sections:
        out += [f"## {title}", *header, *(_row([name, *cells]) for name, cells in rows), ""]
    return "\n".join(out)


def _bare(value: str) -> str:
    """A cell without its explanation in brackets: what is compared."""
    return value.split(" (", 1)[0]


def drifts(matrix: Matrix) -> list[str]:
    found = []
    for service in SERVICES:
        views = {environment: matrix[environment][service] for environment in ENVIRONMENTS}
        found += _variable_drift(service, views)
        tags = {environment: view.image.rsplit(":", 1)[-1] for environment, view in views.items() if ":" in view.image}
        if len(set(tags.values())) > 1:
            found.append(f"{service}: image tags differ: {_listing(tags)}")
        for component in views["local"].backing:
            versions = {environment: view.backing[component] for environment, view in views.items()}
            found += _differ(f"{service}: {component}", versions)
        found += _differ(f"{service}: Python", {environment: view.python for environment, view in views.items()})
        found += _differ(f"{service}: lock hash", {environment: view.lock for environment, view in views.items()})
    return found


def _variable_drift(service: str, views: dict[str, View]) -> list[str]:
    """One line per set of environments a group of variables is given in (not all of them)."""
    every = sorted({name for view in views.values() for name in view.variables})
    groups: dict[tuple[str, ...], list[str]] = {}
    for name in every:
        where = tuple(environment for environment, view in views.items() if name in view.variables)
        if len(where) != len(views):
            groups.setdefault(where, []).append(name)
    return [f"{service}: only {', '.join(where)} give {', '.join(names)}" for where, names in groups.items()]


def _differ(what: str, values: dict[str, str]) -> list[str]:
    known = {environment: _bare(value) for environment, value in values.items() if not value.startswith("?")}
    unknown = [environment for environment, value in values.items() if value.startswith("?")]
    lines = [f"{what} differs: {_listing(known)}"] if len(set(known.values())) > 1 else []
    if unknown:
        lines.append(f"{what} unknown in {', '.join(unknown)}: {values[unknown[0]]}")
    return lines


def _listing(values: dict[str, str]) -> str:
    return ", ".join(f"{environment} {value}" for environment, value in values.items())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m audit.drift", description=__doc__)
    parser.add_argument("--json", type=Path, default=ROOT / "reports" / "parity" / "parity.json")
    arguments = parser.parse_args(argv)
    try:
        matrix = collect(ROOT, dict(os.environ))
    except SourceUnavailable as error:
        print(f"parity: an environment could not be read: {error}", file=sys.stderr)
        return 1
    found = drifts(matrix)
    print(tables(matrix))
    print("## drift")
    print("\n".join(f"- {line}" for line in found) or "none")
    arguments.json.parent.mkdir(parents=True, exist_ok=True)
    arguments.json.write_text(
        json.dumps(
            {
                "environments": list(ENVIRONMENTS),
                "services": {
                    service: {environment: asdict(matrix[environment][service]) for environment in ENVIRONMENTS}
                    for service in SERVICES
                },
                "drift": found,
            },
            indent=2,
        )
    )
    print(f"\nparity: {len(found)} drifts across {len(ENVIRONMENTS)} environments ({arguments.json})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
