from __future__ import annotations

from pathlib import Path

import pytest

from shared.config import Port, ServiceSettings
from shared.testing.documentation import assert_configuration_documented


class BaseDocSettings(ServiceSettings, env_prefix="DOC_"):
    service_name = "doc"


class WebDocSettings(BaseDocSettings):
    port: Port
    page_size: int = 20


PROCESSES: dict[str, type[ServiceSettings]] = {"one-off": BaseDocSettings, "web": WebDocSettings}
COMMON_ROWS = [
    "| `DOC_LOG_LEVEL` | all | `INFO` |",
    "| `DOC_RELEASE_ID` | all | `dev` |",
    "| `DOC_SHUTDOWN_DRAIN_SECONDS` | all | `0` |",
    "| `DOC_SHUTDOWN_TIMEOUT_SECONDS` | all | `10` |",
    "| `DOC_READINESS_TIMEOUT_SECONDS` | all | `2` |",
    "| `DOC_HTTP_IDLE_TIMEOUT_SECONDS` | all | `30` |",
    "| `DOC_HTTP_BODY_TIMEOUT_SECONDS` | all | `10` |",
]


def readme(tmp_path: Path, *rows: str) -> Path:
    path = tmp_path / "README.md"
    path.write_text("# doc\n\n## Configuration\n\n| variable | read by | default |\n|---|---|---|\n" + "\n".join(rows))
    return path


def test_a_true_table_passes(tmp_path: Path) -> None:
    rows = [*COMMON_ROWS, "| `DOC_PORT` | web | required |", "| `DOC_PAGE_SIZE` | web | `20` |"]

    assert_configuration_documented(readme(tmp_path, *rows), PROCESSES)


@pytest.mark.parametrize(
    ("rows", "complaint"),
    [
        ([*COMMON_ROWS, "| `DOC_PORT` | web | required |"], "undocumented: \\['DOC_PAGE_SIZE'\\]"),
        ([*COMMON_ROWS, "| `DOC_PORT` | all | required |", "| `DOC_PAGE_SIZE` | web | `20` |"], "DOC_PORT: documented"),
        (
            [*COMMON_ROWS, "| `DOC_PORT` | web | `8080` |", "| `DOC_PAGE_SIZE` | web | `20` |"],
            "DOC_PORT: documented default",
        ),
    ],
    ids=["missing-row", "wrong-readers", "wrong-requirement"],
)
def test_an_untrue_table_fails(tmp_path: Path, rows: list[str], complaint: str) -> None:
    with pytest.raises(AssertionError, match=complaint):
        assert_configuration_documented(readme(tmp_path, *rows), PROCESSES)
