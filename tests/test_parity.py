"""`make parity` reports drift: given a developer's .env that adds a variable and moves
PostgreSQL to another major version, the matrix shows both, as the JSON does."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from audit.deploys import ROOT
from audit.drift import drifts
from audit.environments import collect

from shared.testing.backing_services import SERVER_URL_VARIABLES

COPIED = (".env.example", "Procfile", "docker-compose.yml", "uv.lock", "deploy", "services", "libs", "load-tests")


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    for name in COPIED:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__", ".*cache"))
        else:
            shutil.copy2(source, tmp_path / name)
    return tmp_path


def test_a_local_env_that_differs_shows_as_drift(checkout: Path, amqp_url: str, postgres_server_url: str) -> None:
    servers = {SERVER_URL_VARIABLES["postgresql"]: postgres_server_url, SERVER_URL_VARIABLES["rabbitmq"]: amqp_url}
    before = drifts(collect(checkout, servers))
    (checkout / ".env").write_text(
        (checkout / ".env.example")
        .read_text()
        .replace("POSTGRES_IMAGE=postgres:15.10-bookworm", "POSTGRES_IMAGE=postgres:16.4-bookworm")
        + "NOTIFIER_SMTP_TIMEOUT_SECONDS=3\n"
    )

    matrix = collect(checkout, servers)
    after = drifts(matrix)

    assert "NOTIFIER_SMTP_TIMEOUT_SECONDS" in matrix["local"]["notifier"].variables
    assert "notifier: only local give NOTIFIER_SMTP_TIMEOUT_SECONDS" in after
    assert not any("NOTIFIER_SMTP_TIMEOUT_SECONDS" in line for line in before)
    assert matrix["compose"]["orders"].backing["postgresql"] == "16.4"
    assert any(line.startswith("orders: postgresql differs:") and "compose 16.4" in line for line in after), after
