"""The runtime checks that need the whole of Dozen can fail: the audited system itself —
built as the images are, every process observed — is given a deliberately broken config,
and the very check `make audit` runs says FAIL and why."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from audit.deploys import ROOT
from audit.runtime.backing import check_backing_services
from audit.runtime.concurrency import check_concurrency
from audit.runtime.findings import Findings
from audit.runtime.system import AuditedSystem, audited_system

from shared.testing.backing_services import SERVER_URL_VARIABLES

# One system for the module: starting it (the release build, every process) costs seconds.
pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def system(
    postgres_server_url: str, amqp_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[AuditedSystem]:
    urls = {"postgresql": postgres_server_url, "rabbitmq": amqp_url, "redis": redis_url}
    servers = {SERVER_URL_VARIABLES[component]: url for component, url in urls.items()}
    async with audited_system(ROOT, servers, Path(tmp_path_factory.mktemp("audited"))) as running:
        yield running


def lines(findings: Findings, factor: str, service: str) -> list[str]:
    [found] = findings.verdicts([factor], [service])
    assert not found.passed, found
    return found.evidence


@pytest.mark.parametrize(
    ("variables", "problem"),
    [
        # A queue of its own gets a copy of every event: each order handled by both notifiers.
        (["NOTIFIER_QUEUE"], "120 of 120 orders not announced (NotificationSent) exactly once"),
        # A queue of its own on an exchange nothing is published to: no share of the work.
        (["NOTIFIER_QUEUE", "NOTIFIER_ORDERS_EXCHANGE"], "notifier-2 handled nothing: the work was not shared"),
    ],
)
async def test_viii_fails_when_the_second_notifier_is_configured_apart_from_the_first(
    system: AuditedSystem, variables: list[str], problem: str
) -> None:
    findings = Findings()
    apart = {variable: system.names(f"elsewhere-{len(variables)}") for variable in variables}

    await check_concurrency(system, findings, {"notifier": apart})

    assert problem in "\n".join(lines(findings, "VIII", "notifier"))
    [orders] = findings.verdicts(["VIII"], ["orders"])
    assert orders.passed, orders


async def test_iv_fails_when_the_swap_points_at_the_database_already_in_use(system: AuditedSystem) -> None:
    findings = Findings()
    system.spare_orders_database_url = system.stack.orders_database_url

    await check_backing_services(system, findings)

    problems = lines(findings, "IV", "orders")
    assert "the swap changed [], not only ORDERS_DATABASE_URL" in problems
    assert any(problem.endswith("was written to the first database too") for problem in problems), problems
