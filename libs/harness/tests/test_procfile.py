"""The Procfile as the one list of Dozen's process types."""

from __future__ import annotations

import pytest

from harness.inflight import HOLDS
from harness.procfile import ProcessType, ProcfileError, of_service, parse, process_types, services

SERVICES = ("gateway", "notifier", "orders")


def test_each_dozen_line_is_a_process_type_in_the_files_order_and_others_are_not() -> None:
    kinds = parse(
        "# comment\n"
        "orders-worker: exec env ORDERS_PORT=$DEV_ORDERS_WORKER_PORT orders worker\n"
        "smtp: exec python -m aiosmtpd --listen 127.0.0.1:$DEV_SMTP_PORT\n"
        "gateway: exec env GATEWAY_PORT=$DEV_GATEWAY_PORT GATEWAY_MANAGEMENT_PORT=$DEV_M GATEWAY_LOG_LEVEL=DEBUG"
        " gateway web --flag\n",
        SERVICES,
    )

    assert list(kinds) == ["orders-worker", "gateway"]
    assert kinds["gateway"] == ProcessType(
        name="gateway",
        service="gateway",
        arguments=("web", "--flag"),
        port_variable="GATEWAY_PORT",
        management_variable="GATEWAY_MANAGEMENT_PORT",
        assignments={
            "GATEWAY_PORT": "$DEV_GATEWAY_PORT",
            "GATEWAY_MANAGEMENT_PORT": "$DEV_M",
            "GATEWAY_LOG_LEVEL": "DEBUG",
        },
    )
    assert kinds["orders-worker"].command == "worker"
    assert kinds["orders-worker"].management_variable is None


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("orders-web: exec orders web", "orders-web: orders must be told its port: env ORDERS_PORT="),
        ("orders-web: exec env NOTIFIER_PORT=1 orders web", "orders-web: orders must be told its port"),
        ("orders-web: exec env ORDERS_PORT=1 orders", "orders-web: orders needs a command"),
        ("smtp: exec python -m aiosmtpd", "the Procfile names none of Dozen's services"),
    ],
)
def test_a_line_that_does_not_say_what_a_process_type_must_is_refused(line: str, problem: str) -> None:
    with pytest.raises(ProcfileError, match=problem):
        parse(line + "\n", SERVICES)


def test_the_repositorys_procfile_runs_every_service_and_starts_consumers_before_producers() -> None:
    kinds = process_types()

    assert services() == SERVICES
    assert {kind.service for kind in kinds.values()} == set(SERVICES)
    order = list(kinds)
    for service in SERVICES:
        names = of_service(service)
        assert names, f"{service} runs no process"
        assert names == sorted(names, key=order.index)
        assert {kinds[name].service for name in names} == {service}
    # Each consumer declares its queue before anything is published to its exchange.
    assert max(order.index(name) for name in order if kinds[name].command == "worker") < order.index("orders-relay")
    assert order.index("orders-web") < order.index("gateway"), "the gateway calls orders web"
    # An API's probes and metrics are never on its public port.
    assert all(kind.management_variable for kind in kinds.values() if kind.command == "web")


def test_every_process_type_has_its_way_to_hold_work_in_flight() -> None:
    """A process type added to the Procfile needs its hold for the SIGTERM test (harness.inflight)."""
    assert set(HOLDS) == set(process_types())
