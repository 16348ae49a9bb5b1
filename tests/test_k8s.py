"""deploy/k8s: each overlay renders, validates strictly against the Kubernetes API schemas, and
gives every process exactly the configuration its settings accept (factor III).

Rendering uses `kubectl kustomize` (kustomize built into kubectl; .ci/run installs kubectl).
"""

from __future__ import annotations

import base64
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]  # ships no type information
import pytest
import yaml

from .config_contract import PROCESS_SETTINGS, assert_environment_accepted

K8S = Path(__file__).parents[1] / "deploy" / "k8s"
# The oldest Kubernetes minor still supported upstream when this was written; strict mode
# also rejects fields the schema does not know (a misspelt key is an error, not a no-op).
KUBERNETES_VERSION = "1.33.0"
OVERLAYS = ["dev", "prod"]
PRESTOP_SECONDS = 5

Manifest = dict[str, Any]


def render(overlay: str) -> list[Manifest]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.fail("no kubectl on PATH (it renders the kustomize overlays): .ci/run installs it", pytrace=False)
    rendered = subprocess.run(  # noqa: S603 - a fixed command on a folder of the repo
        [kubectl, "kustomize", str(K8S / "overlays" / overlay)], capture_output=True, text=True, check=False
    )
    assert rendered.returncode == 0, rendered.stderr
    return [doc for doc in yaml.safe_load_all(rendered.stdout) if doc]


@pytest.fixture(scope="module", params=OVERLAYS)
def manifests(request: pytest.FixtureRequest) -> list[Manifest]:
    return render(request.param)


def of_kind(manifests: list[Manifest], kind: str) -> dict[str, Manifest]:
    return {doc["metadata"]["name"]: doc for doc in manifests if doc["kind"] == kind}


def test_every_object_validates_strictly(manifests: list[Manifest]) -> None:
    for doc in manifests:
        try:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            pytest.fail(f"{doc['kind']}/{doc['metadata']['name']}: {error.message} at {list(error.path)}")


def test_a_deployment_per_process_type_and_a_migration_job_per_database(manifests: list[Manifest]) -> None:
    deployments = of_kind(manifests, "Deployment")
    assert set(deployments) == {"gateway", "orders-web", "orders-relay", "orders-worker", "notifier"}
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


def decoded(secret: Manifest) -> dict[str, str]:
    return {key: base64.b64decode(value).decode() for key, value in secret.get("data", {}).items()}


def container_environment(manifests: list[Manifest], container: Manifest) -> dict[str, str]:
    """What the container's environment would be, resolving envFrom as the kubelet does."""
    configs = {name: doc["data"] for name, doc in of_kind(manifests, "ConfigMap").items()}
    secrets = {name: decoded(doc) for name, doc in of_kind(manifests, "Secret").items()}
    # prod's Secrets come from the operator's secret store, holding the keys dev generates
    # (dev's names carry kustomize's content hash; prod refers to the plain names).
    for name, doc in of_kind(render("dev"), "Secret").items():
        secrets.setdefault(name.rsplit("-", 1)[0], decoded(doc))
    environment: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            environment |= configs[source["configMapRef"]["name"]]
        else:
            environment |= secrets[source["secretRef"]["name"]]
    environment |= {variable["name"]: variable["value"] for variable in container.get("env", [])}
    return environment


def test_every_process_gets_exactly_the_configuration_its_settings_accept(
    manifests: list[Manifest], monkeypatch: pytest.MonkeyPatch
) -> None:
    workloads = of_kind(manifests, "Deployment") | of_kind(manifests, "Job")
    assert len(workloads) == len(PROCESS_SETTINGS)
    for workload in workloads.values():
        (container,) = workload["spec"]["template"]["spec"]["containers"]
        service = container["image"].rsplit("/", 1)[-1].split(":")[0]
        process = container["args"][0]
        assert_environment_accepted(
            monkeypatch, PROCESS_SETTINGS[service, process], container_environment(manifests, container)
        )
