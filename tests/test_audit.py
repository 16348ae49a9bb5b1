"""`make audit` can fail: each check, fed a deliberately broken repository, deploy or setting,
says FAIL and why. (That it passes on Dozen itself is `make audit`, run by .ci/run.)"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from audit import attached, images, static
from audit.deploys import PROCESS_SETTINGS, ROOT, Process
from audit.runtime.findings import Findings
from audit.scorecard import Verdict
from audit.testrun import run_factor_tests
from audit.versions import judge_versions, parity
from pydantic import Field, SecretStr

from orders.settings import WebSettings as OrdersWeb
from shared.config import Port, PostgresUrl

GOOD_ORDERS_WEB = {
    "ORDERS_DATABASE_URL": "postgresql://dozen@postgres:5432/orders",
    "ORDERS_PORT": "8081",
    "ORDERS_MANAGEMENT_PORT": "9081",
    "ORDERS_API_TOKEN": "a-deploys-own-orders-credential-32b",  # pragma: allowlist secret
}


def orders_deploy(**changes: object) -> dict[str, list[Process]]:
    """One deploy of the orders service: web and its migration, sane unless changed."""
    web = Process("orders-web", "orders", "web", "dozen/orders:1", dict(GOOD_ORDERS_WEB))
    migrate = Process(
        "orders-migrate",
        "orders",
        "migrate",
        "dozen/orders:1",
        {"ORDERS_DATABASE_URL": GOOD_ORDERS_WEB["ORDERS_DATABASE_URL"]},
    )
    processes = [web, migrate]
    for field_name, value in changes.items():
        target, _, attribute = field_name.partition("__")
        index = {"web": 0, "migrate": 1}[target]
        processes[index] = Process(**{**processes[index].__dict__, attribute: value})
    return {"deploy": processes}


def orders_verdict(verdicts: list[Verdict]) -> Verdict:
    (found,) = [found for found in verdicts if found.service == "orders"]
    return found


def test_the_sane_deploy_passes_every_deploy_check() -> None:
    deploy = orders_deploy()
    for check in (static.config, static.port_binding, static.codebase):
        assert orders_verdict(check(ROOT, deploy)).passed, check.__name__
    assert orders_verdict(static.admin_processes(deploy)).passed


@pytest.mark.parametrize(
    ("environment", "problem"),
    [
        (
            {k: v for k, v in GOOD_ORDERS_WEB.items() if k != "ORDERS_DATABASE_URL"},
            "ORDERS_DATABASE_URL: required but not set",
        ),
        (GOOD_ORDERS_WEB | {"ORDERS_DATABASE_ULR": "postgresql://x/"}, "ORDERS_DATABASE_ULR: unknown variable"),
        (GOOD_ORDERS_WEB | {"ORDERS_PORT": "eighty"}, "ORDERS_PORT:"),
    ],
)
def test_iii_fails_on_a_missing_misspelt_or_invalid_variable(environment: dict[str, str], problem: str) -> None:
    found = orders_verdict(static.config(ROOT, orders_deploy(web__environment=environment)))
    assert not found.passed
    assert any(problem in line for line in found.evidence), found.evidence


def test_vii_fails_when_a_deploy_gives_no_port_or_a_port_has_a_default(monkeypatch: pytest.MonkeyPatch) -> None:
    no_port = {k: v for k, v in GOOD_ORDERS_WEB.items() if k != "ORDERS_PORT"}
    found = orders_verdict(static.port_binding(ROOT, orders_deploy(web__environment=no_port)))
    assert not found.passed
    assert "deploy orders-web: no ORDERS_PORT given" in found.evidence

    class Defaulted(OrdersWeb):
        port: Port = Field(8080)

    monkeypatch.setitem(PROCESS_SETTINGS, ("orders", "web"), Defaulted)
    found = orders_verdict(static.port_binding(ROOT, orders_deploy()))
    assert "orders web: its port is not a required setting" in found.evidence


def test_vii_fails_on_a_literal_port_in_the_source(tmp_path: Path) -> None:
    source = tmp_path / "services" / "orders" / "src"
    (source / "orders").mkdir(parents=True)
    (source / "orders" / "app.py").write_text("site = web.TCPSite(runner, '0.0.0.0', 8080)\n")
    assert static._hard_coded_ports(source) == [
        "services/orders/src/orders/app.py: a literal port in \"TCPSite(runner, '0.0.0.0', 8080\""
    ]


def test_i_fails_when_processes_of_one_service_run_different_images() -> None:
    found = orders_verdict(static.codebase(ROOT, orders_deploy(migrate__image="dozen/orders-migrations:1")))
    assert not found.passed
    assert any("not one image of it" in line for line in found.evidence)


def test_xii_fails_when_a_one_off_runs_another_image_or_another_config() -> None:
    other_image = orders_verdict(static.admin_processes(orders_deploy(migrate__image="dozen/orders:2")))
    other_url = orders_verdict(
        static.admin_processes(orders_deploy(migrate__environment={"ORDERS_DATABASE_URL": "postgresql://x@y/other"}))
    )
    assert not other_image.passed
    assert not other_url.passed
    assert any("configured differently: ['ORDERS_DATABASE_URL']" in line for line in other_url.evidence)


def copied(tmp_path: Path, *paths: str) -> Path:
    for path in paths:
        source = ROOT / path
        target = tmp_path / path
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", ".*cache"))
        else:
            shutil.copy2(source, target)
    return tmp_path


def edited(root: Path, path: str, change: Callable[[str], str]) -> None:
    target = root / path
    before = target.read_text()
    after = change(before)
    assert after != before, f"the edit changed nothing in {path}"
    target.write_text(after)


def test_i_fails_when_a_dockerfile_does_not_install_from_the_lockfile(tmp_path: Path) -> None:
    root = copied(
        tmp_path, "uv.lock", "services/orders/Dockerfile", "services/gateway/Dockerfile", "services/notifier/Dockerfile"
    )
    edited(root, "services/orders/Dockerfile", lambda text: text.replace("uv sync --locked", "uv sync"))
    found = orders_verdict(static.codebase(root, {}))
    assert "services/orders/Dockerfile does not install from uv.lock with --locked" in found.evidence


def test_ii_fails_on_an_import_the_member_does_not_declare(tmp_path: Path) -> None:
    root = copied(tmp_path, "pyproject.toml", "uv.lock", "libs", "services", "load-tests")
    edited(root, "services/orders/src/orders/keys.py", lambda text: text + "\nimport yaml  # noqa\n")
    found = orders_verdict(static.dependencies(root))
    assert not found.passed
    assert any("keys.py" in line and "'yaml' imported but" in line for line in found.evidence), found.evidence


def test_x_fails_when_a_server_version_drifts_past_the_compatible_part(tmp_path: Path) -> None:
    root = copied(tmp_path, ".python-version", ".env.example", "docker-compose.yml", "services/orders/Dockerfile")
    edited(root, ".env.example", lambda text: text.replace("POSTGRES_IMAGE=postgres:15", "POSTGRES_IMAGE=postgres:16"))
    found = orders_verdict(parity(root, environ={}))
    assert not found.passed
    drift = next(line for line in found.evidence if line.startswith("postgresql drifts"))
    assert ".env.example 16" in drift


def test_i_fails_when_a_deploy_runs_a_process_type_with_other_arguments() -> None:
    deploy = orders_deploy()
    other = orders_deploy(web__arguments=("web", "--debug"))
    both = {"compose": deploy["deploy"], "k8s": other["deploy"]}

    found = orders_verdict(static.codebase(ROOT, both))

    assert not found.passed
    assert any("`orders web` is run differently by the deploys" in line for line in found.evidence), found.evidence


def test_iv_fails_for_a_url_with_a_default_and_for_an_address_in_the_code(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    class Defaulted(OrdersWeb):
        database_url: PostgresUrl = Field(SecretStr("postgresql://localhost/orders"))

    monkeypatch.setitem(PROCESS_SETTINGS, ("orders", "web"), Defaulted)
    root = copied(tmp_path, "services/gateway/src", "services/orders/src", "services/notifier/src")
    edited(
        root,
        "services/orders/src/orders/app.py",
        lambda text: text + '\nFALLBACK = "amqp://rabbitmq:5672/"\n',
    )

    found = orders_verdict(attached.backing_services(root))

    appended_at = len((root / "services/orders/src/orders/app.py").read_text().splitlines())
    assert not found.passed
    assert "ORDERS_DATABASE_URL has a default or is not a secret URL setting" in found.evidence
    assert f"an address in the code: services/orders/src/orders/app.py:{appended_at}: amqp://rabbitmq" in found.evidence


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda text: text.replace('dev.dozen.release-id="${RELEASE_ID}"', 'dev.dozen.release-id="dev"'), "label"),
        (lambda text: text + "ENV ORDERS_DATABASE_URL=postgresql://db/orders\n", "config baked into the image"),
        (lambda text: text + "COPY services/orders/src /app/src\n", "copies more than the build's output"),
    ],
)
def test_v_fails_for_an_image_without_its_release_id_with_config_or_with_source(
    tmp_path: Path, change: Callable[[str], str], problem: str
) -> None:
    root = copied(tmp_path, "services/orders/Dockerfile", "services/gateway/Dockerfile", "services/notifier/Dockerfile")
    edited(root, "services/orders/Dockerfile", change)

    found = orders_verdict(images.build_release_run(root))

    assert not found.passed
    assert any(problem in line for line in found.evidence), found.evidence


def test_x_fails_when_a_version_cannot_be_read() -> None:
    failures, line = judge_versions("postgresql", {"compose": "15.10", "servers the tests use": "? (refused)"})

    assert failures == ["postgresql version unknown at servers the tests use: ? (refused)"]
    assert line is None


def test_a_factor_is_judged_by_the_outcome_of_the_tests_marked_with_it(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[tool.pytest.ini_options]\naddopts = ["--strict-markers"]\nmarkers = ["factor(numeral, *services): proves"]\n'
        'asyncio_default_fixture_loop_scope = "function"\n'
    )
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_proofs.py").write_text(
        "import pytest\n"
        "from harness.stack import LAUNCH\n\n"
        '@pytest.mark.factor("VI", "orders")\n'
        "def test_holds(request):\n"
        "    assert request.config.stash[LAUNCH]('orders', [], {}) == 'launched by the audit'\n\n"
        '@pytest.mark.factor("VI", "notifier")\n'
        "def test_breaks():\n"
        "    assert 1 + 1 == 3, 'the notifier kept state'\n\n"
        '@pytest.mark.factor("XII", "orders-web")\n'
        "def test_of_a_process_type_not_a_service():\n"
        "    pass\n\n"
        '@pytest.mark.factor("IX")\n'
        "def test_not_asked_for():\n"
        "    raise AssertionError('run though IX was not asked for')\n\n"
        "def test_proves_nothing():\n"
        "    raise AssertionError('run though it proves no factor')\n"
    )
    findings = Findings()

    run_factor_tests(tmp_path, lambda *_: "launched by the audit", findings, ["VI", "XII"])  # type: ignore[arg-type]

    verdicts = {verdict.service: verdict for verdict in findings.verdicts(["VI"], ["orders", "notifier", "gateway"])}
    assert verdicts["orders"].passed, verdicts["orders"]
    assert verdicts["orders"].evidence[0].startswith("tests/test_proofs.py::test_holds passed")
    assert not verdicts["notifier"].passed
    assert "test_breaks failed in call: AssertionError: the notifier kept state" in verdicts["notifier"].evidence[0]
    assert not verdicts["gateway"].passed, "a cell no test proved must not pass"
    [misnamed] = findings.verdicts(["XII"], ["gateway"])
    assert misnamed.evidence == [
        "tests/test_proofs.py::test_of_a_process_type_not_a_service names no service: ['orders-web']"
    ]
    assert findings.verdicts(["IX"], ["orders"])[0].evidence == [
        "nothing was observed for this check (an earlier step failed?)"
    ]
