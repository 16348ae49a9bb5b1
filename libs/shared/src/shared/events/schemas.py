"""Write each contract's JSON schema to a folder: ``python -m shared.events.schemas DIR``.

The committed schemas are the published contracts; a test compares them with the
models, so no change to a contract goes unnoticed in review.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from shared.events.contracts import ALL_CONTRACTS
from shared.events.envelope import Envelope, EventData


def schema_of(contract: type[EventData]) -> dict[str, object]:
    return Envelope[contract].model_json_schema()  # type: ignore[valid-type]


def render(contract: type[EventData]) -> str:
    return json.dumps(schema_of(contract), indent=2, sort_keys=True) + "\n"


def main() -> None:
    folder = Path(sys.argv[1])
    folder.mkdir(parents=True, exist_ok=True)
    for contract in ALL_CONTRACTS:
        (folder / f"{contract.event_type}.schema.json").write_text(render(contract))


if __name__ == "__main__":
    main()
