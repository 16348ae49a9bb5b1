"""`make audit`: the twelve factors checked against Dozen's own files and deploys.

Prints the scorecard (service by factor, PASS or FAIL) and the evidence behind each verdict,
writes the same as JSON, and exits 1 on any FAIL.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from audit.deploys import ROOT, SERVICES
from audit.parity import parity
from audit.scorecard import FACTORS, as_json, evidence, table
from audit.static import run_static


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m audit", description=__doc__)
    parser.add_argument("--json", type=Path, default=ROOT / "reports" / "audit" / "audit.json")
    parser.add_argument("--factor", action="append", choices=list(FACTORS), help="only these factors")
    arguments = parser.parse_args(argv)
    only = set(arguments.factor) if arguments.factor else None

    verdicts = run_static(ROOT, only)
    if only is None or "X" in only:
        verdicts += parity(ROOT)
    audited = {found.factor for found in verdicts}
    not_audited = [factor for factor in FACTORS if factor not in audited and (only is None or factor in only)]

    print(table(verdicts, SERVICES))
    print()
    print(evidence(verdicts))
    if not_audited:
        print(f"\nnot audited yet: {', '.join(not_audited)} (they need the running system)")
    arguments.json.parent.mkdir(parents=True, exist_ok=True)
    arguments.json.write_text(as_json(verdicts, not_audited))
    failed = [f"{found.factor}/{found.service}" for found in verdicts if not found.passed]
    print(f"\naudit: {'FAIL ' + ', '.join(failed) if failed else 'every audited factor PASSES'} ({arguments.json})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
