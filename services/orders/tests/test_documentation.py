"""The configuration table in the README is the settings classes, written out."""

from __future__ import annotations

import re
from pathlib import Path

from orders.settings import OrdersSettings, RelaySettings, WebSettings, WorkerSettings

README = Path(__file__).parents[1] / "README.md"
PROCESS_SETTINGS: dict[str, type[OrdersSettings]] = {
    "web": WebSettings,
    "relay": RelaySettings,
    "worker": WorkerSettings,
}


def documented() -> dict[str, tuple[set[str], str]]:
    section = README.read_text().split("## Configuration", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `(ORDERS_[A-Z_]+)` \| ([a-z, ]+) \| (.+?) \|$", section, flags=re.MULTILINE)
    return {name: ({part.strip() for part in readers.split(",")}, default) for name, readers, default in rows}


def test_every_variable_is_documented_and_nothing_else() -> None:
    assert set(documented()) == OrdersSettings.service_variables()


def test_documented_readers_and_requirement_match_the_settings() -> None:
    for variable, (readers, default) in documented().items():
        actual = {name for name, settings in PROCESS_SETTINGS.items() if variable in settings.variable_names().values()}
        if variable in OrdersSettings.variable_names().values():
            assert readers == {"all"}, variable
        else:
            assert readers == actual, variable
        every_process: list[type[OrdersSettings]] = [OrdersSettings, *PROCESS_SETTINGS.values()]
        field = next(
            field
            for settings in every_process
            for name, field in settings.model_fields.items()
            if settings.variable_names()[name] == variable
        )
        assert (default == "required") == field.is_required(), variable
