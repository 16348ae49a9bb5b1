from __future__ import annotations

from pathlib import Path

from gateway.settings import GatewaySettings, WebSettings
from shared.testing.documentation import assert_configuration_documented


def test_the_readme_documents_every_variable_each_process_type_reads() -> None:
    assert_configuration_documented(
        Path(__file__).parents[1] / "README.md", {"web": WebSettings, "issue-token": GatewaySettings}
    )
