"""The deploy/ configuration is valid and the committed dashboards are what the code generates."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

DEPLOY = Path(__file__).parents[1] / "deploy"


def test_promtool_accepts_the_prometheus_config() -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("no promtool on PATH: install Debian's prometheus package (.ci/run does)", pytrace=False)
    checked = subprocess.run(  # noqa: S603 - a fixed command on a file of the repo
        [promtool, "check", "config", str(DEPLOY / "prometheus" / "prometheus.yml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_committed_dashboards_are_generated_from_code() -> None:
    spec = importlib.util.spec_from_file_location("dashboards", DEPLOY / "grafana" / "dashboards.py")
    assert spec is not None
    assert spec.loader is not None
    generator = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generator)
    for name in generator.DASHBOARDS:
        committed = (DEPLOY / "grafana" / "dashboards" / f"{name}.json").read_text()
        assert committed == generator.render(name), f"{name}.json is stale: run `make dashboards`"


@pytest.mark.parametrize(
    "path",
    [
        "otel-collector/config.yaml",
        "loki/config.yaml",
        "grafana/provisioning/datasources/datasources.yaml",
        "grafana/provisioning/dashboards/dashboards.yaml",
    ],
)
def test_configuration_files_are_yaml(path: str) -> None:
    assert isinstance(yaml.safe_load((DEPLOY / path).read_text()), dict)


def test_datasources_link_metrics_traces_and_logs_by_fixed_uid() -> None:
    sources = {
        source["uid"]: source
        for source in yaml.safe_load((DEPLOY / "grafana/provisioning/datasources/datasources.yaml").read_text())[
            "datasources"
        ]
    }
    assert set(sources) == {"prometheus", "jaeger", "loki"}
    assert sources["prometheus"]["jsonData"]["exemplarTraceIdDestinations"][0]["datasourceUid"] == "jaeger"
    assert sources["jaeger"]["jsonData"]["tracesToLogsV2"]["datasourceUid"] == "loki"
    assert sources["loki"]["jsonData"]["derivedFields"][0]["datasourceUid"] == "jaeger"


def test_collector_pipelines_use_only_declared_components_and_export_to_compose_services() -> None:
    # No collector binary runs here (its image is not in Debian): its config is checked statically.
    config = yaml.safe_load((DEPLOY / "otel-collector" / "config.yaml").read_text())
    for name, pipeline in config["service"]["pipelines"].items():
        for kind in ("receivers", "processors", "exporters"):
            undeclared = set(pipeline.get(kind, [])) - set(config[kind])
            assert not undeclared, f"pipeline {name}: undeclared {kind} {sorted(undeclared)}"
    compose = yaml.safe_load((DEPLOY.parent / "docker-compose.yml").read_text())
    for exporter in config["exporters"].values():
        host = exporter["endpoint"].split("://")[-1].split(":")[0]
        assert host in compose["services"], f"the collector exports to {host}, which compose does not run"


def test_every_file_compose_mounts_exists() -> None:
    compose = yaml.safe_load((DEPLOY.parent / "docker-compose.yml").read_text())
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (DEPLOY.parent / source).exists(), f"{name} mounts {source}, which does not exist"
