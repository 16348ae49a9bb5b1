from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from pydantic import Field, SecretStr

from shared.config import AmqpUrl, ConfigError, Port, PostgresUrl, ServiceSettings, load_settings, read_settings
from shared.queue_settings import ConsumerSettings


class ExampleSettings(ServiceSettings, env_prefix="EXAMPLE_"):
    service_name = "example"

    port: Port
    database_url: PostgresUrl
    amqp_url: AmqpUrl
    api_secret: SecretStr = Field(min_length=32)
    request_timeout_seconds: float = Field(5.0, gt=0)


class ExampleWorkerSettings(ExampleSettings):
    """Another process type of the same service, reading one more variable."""

    prefetch_count: int = 10


VALID = {
    "EXAMPLE_PORT": "8080",
    "EXAMPLE_DATABASE_URL": "postgresql://app:s3cret-db-pass@db:5432/app",  # pragma: allowlist secret
    "EXAMPLE_AMQP_URL": "amqp://guest:guest@mq:5672/",  # pragma: allowlist secret
    "EXAMPLE_API_SECRET": "x" * 32,
}


SetEnv = Callable[[dict[str, str]], None]


@pytest.fixture
def use_env(monkeypatch: pytest.MonkeyPatch) -> SetEnv:
    """Start from an environment without EXAMPLE_* variables; set the ones a test gives."""
    for name in list(os.environ):
        if name.startswith("EXAMPLE_"):
            monkeypatch.delenv(name)

    def set_all(values: dict[str, str]) -> None:
        for key, value in values.items():
            monkeypatch.setenv(key, value)

    return set_all


def test_valid_environment_gives_typed_settings(use_env: SetEnv) -> None:
    use_env(VALID | {"EXAMPLE_REQUEST_TIMEOUT_SECONDS": "2.5", "EXAMPLE_RELEASE_ID": "r42"})

    settings = read_settings(ExampleSettings)

    assert settings.port == 8080
    assert settings.request_timeout_seconds == 2.5
    assert settings.release_id == "r42"
    assert settings.database_url.get_secret_value() == VALID["EXAMPLE_DATABASE_URL"]
    assert "s3cret-db-pass" not in repr(settings)


def test_tunables_have_defaults_but_urls_ports_and_secrets_do_not(use_env: SetEnv) -> None:
    with pytest.raises(ConfigError) as raised:
        read_settings(ExampleSettings)

    assert raised.value.problems == [
        "EXAMPLE_PORT: required but not set",
        "EXAMPLE_DATABASE_URL: required but not set",
        "EXAMPLE_AMQP_URL: required but not set",
        "EXAMPLE_API_SECRET: required but not set",
    ]


def test_every_problem_is_reported_at_once_without_values(use_env: SetEnv) -> None:
    use_env(
        {
            "EXAMPLE_PORT": "eighty",
            "EXAMPLE_DATABASE_URL": "mysql://root:hunter2-password@db/app",  # pragma: allowlist secret
            "EXAMPLE_API_SECRET": "too-short-hunter2",  # pragma: allowlist secret
            "EXAMPLE_REQUEST_TIMEOUT_SECONDS": "-1",
            "EXAMPLE_DATABSE_URL": "postgresql://typo@db/app",
        },
    )

    with pytest.raises(ConfigError) as raised:
        read_settings(ExampleSettings)

    problems = raised.value.problems
    assert [problem.split(":")[0] for problem in problems] == [
        "EXAMPLE_PORT",
        "EXAMPLE_DATABASE_URL",
        "EXAMPLE_AMQP_URL",
        "EXAMPLE_API_SECRET",
        "EXAMPLE_REQUEST_TIMEOUT_SECONDS",
        "EXAMPLE_DATABSE_URL",
    ]
    assert "must be a URL of scheme postgresql or postgres" in problems[1]
    assert "unknown variable" in problems[-1]
    text = "\n".join(problems)
    assert "hunter2" not in text
    assert "eighty" not in text


class ExampleConsumerSettings(ExampleSettings, ConsumerSettings):
    """A process type that consumes a queue."""


def test_a_backoff_that_would_start_above_its_most_is_refused(use_env: SetEnv) -> None:
    use_env(VALID | {"EXAMPLE_QUEUE": "q", "EXAMPLE_FIRST_BACKOFF_SECONDS": "10", "EXAMPLE_MAX_BACKOFF_SECONDS": "1"})

    with pytest.raises(ConfigError) as raised:
        read_settings(ExampleConsumerSettings)

    assert "EXAMPLE_FIRST_BACKOFF_SECONDS must not exceed EXAMPLE_MAX_BACKOFF_SECONDS" in raised.value.problems[0]


def test_shutdown_budget_must_fit_the_orchestrators_grace_period(use_env: SetEnv) -> None:
    use_env(VALID | {"EXAMPLE_SHUTDOWN_DRAIN_SECONDS": "10", "EXAMPLE_SHUTDOWN_TIMEOUT_SECONDS": "20"})

    with pytest.raises(ConfigError) as raised:
        read_settings(ExampleSettings)

    assert "must not exceed 25 s" in raised.value.problems[0]


def test_dotenv_files_are_not_read(use_env: SetEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / ".env").write_text("".join(f"{key}={value}\n" for key, value in VALID.items()))
    monkeypatch.chdir(tmp_path)

    with pytest.raises(ConfigError):
        read_settings(ExampleSettings)


def test_load_settings_exits_78_listing_each_problem_on_stderr(
    use_env: SetEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    use_env({"EXAMPLE_API_SECRET": "short-but-secret-value"})  # pragma: allowlist secret

    with pytest.raises(SystemExit) as exited:
        load_settings(ExampleSettings)

    assert exited.value.code == 78
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert lines[:4] == [
        "config error: EXAMPLE_PORT: required but not set",
        "config error: EXAMPLE_DATABASE_URL: required but not set",
        "config error: EXAMPLE_AMQP_URL: required but not set",
        "config error: EXAMPLE_API_SECRET: must be at least 32 characters long",
    ]
    assert "Traceback" not in captured.err
    assert "short-but-secret-value" not in captured.err
    assert str(len("short-but-secret-value")) not in captured.err


def test_variable_names_carry_prefix_and_unit() -> None:
    names = ExampleSettings.variable_names()

    assert names["request_timeout_seconds"] == "EXAMPLE_REQUEST_TIMEOUT_SECONDS"
    assert all(name.startswith("EXAMPLE_") for name in names.values())


def test_a_variable_another_process_type_reads_is_not_unknown(use_env: SetEnv) -> None:
    use_env(VALID | {"EXAMPLE_PREFETCH_COUNT": "5"})

    assert read_settings(ExampleSettings).port == 8080
    assert read_settings(ExampleWorkerSettings).prefetch_count == 5
