"""The configuration table in the README is the settings classes, written out."""

from __future__ import annotations

from pathlib import Path

from orders.settings import DatabaseSettings, PruneSettings, QueueSettings, RelaySettings, WebSettings, WorkerSettings
from shared.testing.documentation import assert_configuration_documented


def test_the_readme_documents_every_variable_each_process_type_reads() -> None:
    assert_configuration_documented(
        Path(__file__).parents[1] / "README.md",
        {
            "migrate": DatabaseSettings,
            "web": WebSettings,
            "relay": RelaySettings,
            "worker": WorkerSettings,
            "dlq": QueueSettings,
            "prune": PruneSettings,
        },
    )
