"""deploy/k8s: each overlay renders, validates strictly against the Kubernetes API schemas, and
gives every process exactly the configuration its settings accept (factor III).

Rendering uses `kubectl kustomize` (kustomize built into kubectl; .ci/run installs kubectl).
"""

from __future__ import annotations

import kubernetes_validate  # type: ignore[import-untyped]  # ships no type information
import pytest
from audit.deploys import Manifest, SourceUnavailable, k8s_processes, of_kind, rendered_overlay

from harness.procfile import process_types

from .config_contract import PROCESS_SETTINGS, assert_environment_accepted

# The oldest Kubernetes minor still supported upstream when this was written; strict mode
# also rejects fields the schema does not know (a misspelt key is an error, not a no-op).
KUBERNETES_VERSION = "1.33.0"
OVERLAYS = ["dev", "prod"]
PRESTOP_SECONDS = 5


def render(overlay: str) -> list[Manifest]:
    try:
        return rendered_overlay(overlay)
    except SourceUnavailable as error:
        pytest.fail(str(error), pytrace=False)


@pytest.fixture(scope="module", params=OVERLAYS)
def manifests(request: pytest.FixtureRequest) -> list[Manifest]:
    return render(request.param)


def test_every_object_validates_strictly(manifests: list[Manifest]) -> None:
    for doc in manifests:
        try:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            pytest.fail(f"{doc['kind']}/{doc['metadata']['name']}: {error.message} at {list(error.path)}")


def test_a_deployment_per_process_type_and_a_migration_job_per_database(manifests: list[Manifest]) -> None:
    deployments = of_kind(manifests, "Deployment")
    assert set(deployments) == set(process_types())
    jobs = of_kind(manifests, "Job")
    assert {name: job["spec"]["template"]["spec"]["containers"][0]["args"][0] for name, job in jobs.items()} == {
        "orders-migrate": "migrate",
        "notifier-migrate": "migrate",
    }
    assert set(of_kind(manifests, "HorizontalPodAutoscaler")) == {"gateway", "notifier"}
    assert set(of_kind(manifests, "PodDisruptionBudget")) == set(deployments)
    assert set(of_kind(manifests, "Service")) == {"gateway", "orders-web"}


def test_pods_are_probed_limited_and_locked_down(manifests: list[Manifest]) -> None:
    for name, deployment in of_kind(manifests, "Deployment").items():
        pod = deployment["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz", name
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz", name
        assert {"cpu", "memory"} <= set(container["resources"]["requests"]), name
        assert {"cpu", "memory"} <= set(container["resources"]["limits"]), name
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert container["securityContext"]["readOnlyRootFilesystem"] is True, name
        assert container["securityContext"]["allowPrivilegeEscalation"] is False, name
        assert container["securityContext"]["capabilities"]["drop"] == ["ALL"], name


def test_the_grace_period_outlasts_the_prestop_delay_plus_the_apps_drain_and_timeout(
    manifests: list[Manifest],
) -> None:
    configs = of_kind(manifests, "ConfigMap")
    for name, deployment in of_kind(manifests, "Deployment").items():
        pod = deployment["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        assert container["lifecycle"]["preStop"]["exec"]["command"] == ["sleep", str(PRESTOP_SECONDS)], name
        (config_ref,) = [source["configMapRef"]["name"] for source in container["envFrom"] if "configMapRef" in source]
        data = configs[config_ref]["data"]
        prefix = name.split("-")[0].upper()
        app_budget = float(data[f"{prefix}_SHUTDOWN_DRAIN_SECONDS"]) + float(data[f"{prefix}_SHUTDOWN_TIMEOUT_SECONDS"])
        assert pod["terminationGracePeriodSeconds"] > PRESTOP_SECONDS + app_budget, name


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_process_gets_exactly_the_configuration_its_settings_accept(overlay: str) -> None:
    processes = k8s_processes(overlay)
    assert len(processes) == len(PROCESS_SETTINGS)
    for process in processes:
        assert_environment_accepted(PROCESS_SETTINGS[process.service, process.command], process.environment)


# Development conveniences: anyone who reaches the gateway could act as a demo customer, or
# reach a fault switchboard or the processes' metrics through the board.
DEVELOPMENT_ONLY = ("GATEWAY_DEMO_CUSTOMERS", "GATEWAY_BOARD_FAULTS_URL", "GATEWAY_BOARD_METRICS_URLS")


def test_the_production_overlay_offers_no_demo_sign_in_no_fault_panel_and_no_metrics_on_the_board() -> None:
    for process in k8s_processes("prod"):
        assert not {name: process.environment[name] for name in DEVELOPMENT_ONLY if name in process.environment}
