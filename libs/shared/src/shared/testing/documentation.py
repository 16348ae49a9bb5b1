"""Keep a service README's configuration table equal to its settings classes.

The table sits under a "## Configuration" heading, one row a variable:
``| `ORDERS_PORT` | web, relay, worker | required |`` — who reads it ("all" for every
process type) and its default, or "required".
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from shared.config import ServiceSettings

_ROW = re.compile(r"^\| `([A-Z][A-Z0-9_]+)` \| ([a-z, -]+) \| (.+?) \|$", flags=re.MULTILINE)


def configuration_table(readme: Path) -> dict[str, tuple[set[str], str]]:
    """Variable -> (process types that read it, documented default)."""
    section = readme.read_text().split("## Configuration", 1)[1].split("\n## ", 1)[0]
    return {
        name: ({part.strip() for part in readers.split(",")}, default)
        for name, readers, default in _ROW.findall(section)
    }


def assert_configuration_documented(readme: Path, processes: Mapping[str, type[ServiceSettings]]) -> None:
    """Every variable any process type reads is in the table, with its readers and whether it is required."""
    table = configuration_table(readme)
    read = {
        variable: {name for name, settings in processes.items() if variable in settings.variable_names().values()}
        for settings in processes.values()
        for variable in settings.variable_names().values()
    }
    assert not set(read) - set(table), f"undocumented: {sorted(set(read) - set(table))}"
    assert not set(table) - set(read), f"documented but read by nothing: {sorted(set(table) - set(read))}"
    for variable, (readers, default) in table.items():
        documented_readers = set(processes) if readers == {"all"} else readers
        assert documented_readers == read[variable], f"{variable}: documented {readers}, read by {read[variable]}"
        required = any(
            field.is_required()
            for settings in processes.values()
            for name, field in settings.model_fields.items()
            if settings.variable_names()[name] == variable
        )
        assert (default == "required") == required, f"{variable}: documented default {default!r}, required={required}"
