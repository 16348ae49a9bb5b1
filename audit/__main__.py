"""`make audit`: the twelve factors checked against Dozen's files, its deploys and the
running system.

Prints the scorecard (service by factor, PASS or FAIL) and the evidence behind each verdict,
writes the same as JSON, and exits 1 on any FAIL. The running system is the release built
as the images are, run against the servers the TEST_* URLs name; --static-only skips it.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from audit import progress
from audit.deploys import ROOT, SERVICES
from audit.runtime import RUNTIME_FACTORS, run_runtime
from audit.scorecard import FACTORS, as_json, evidence, merged, table
from audit.static import run_static
from audit.versions import parity


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m audit", description=__doc__)
    parser.add_argument("--json", type=Path, default=ROOT / "reports" / "audit" / "audit.json")
    parser.add_argument("--factor", action="append", choices=list(FACTORS), help="only these factors (repeatable)")
    parser.add_argument("--static-only", action="store_true", help="skip the factors shown by the running system")
    arguments = parser.parse_args(argv)
    only = set(arguments.factor) if arguments.factor else None
    began = time.monotonic()

    progress.step("the files and every deploy (static checks)")
    verdicts = run_static(ROOT, only)
    if only is None or "X" in only:
        progress.step("backing-service versions across the deploys (X)")
        verdicts += parity(ROOT)
    skipped = []
    if arguments.static_only:
        skipped = [factor for factor in RUNTIME_FACTORS if only is None or factor in only]
    else:
        verdicts += run_runtime(ROOT, os.environ, only)
    order = {factor: index for index, factor in enumerate(FACTORS)}
    verdicts = merged(verdicts)
    verdicts.sort(key=lambda found: (order[found.factor], SERVICES.index(found.service)))

    print(table(verdicts, SERVICES))
    print()
    print(evidence(verdicts))
    if skipped:
        print(f"\nnot run (--static-only): the running system's checks of {', '.join(skipped)}")
    arguments.json.parent.mkdir(parents=True, exist_ok=True)
    arguments.json.write_text(as_json(verdicts, skipped))
    failed = [f"{found.factor}/{found.service}" for found in verdicts if not found.passed]
    seconds = time.monotonic() - began
    outcome = "FAIL " + ", ".join(failed) if failed else "every audited factor PASSES"
    print(f"\naudit: {outcome} in {seconds:.0f} s ({arguments.json})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
