"""Every dashboard panel shows data: a real Prometheus scrapes a real Dozen under traffic,
then each panel's PromQL is run against it and must return at least one series."""

from __future__ import annotations

import json
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
import pytest

from harness.api import Customer
from harness.procfile import process_types
from harness.stack import Stack
from shared.testing import ServiceProcess, eventually, free_port

if TYPE_CHECKING:
    pass

DASHBOARDS = Path(__file__).parents[1] / "deploy" / "grafana" / "dashboards"
# Grafana fills this in from the scrape interval; a fixed window does here (scrapes every second).
RATE_WINDOW = "30s"


def panel_queries() -> dict[str, str]:
    queries = {}
    for path in sorted(DASHBOARDS.glob("*.json")):
        dashboard = json.loads(path.read_text())
        for panel in dashboard["panels"]:
            for target in panel["targets"]:
                key = f"{dashboard['title']} / {panel['title']} / {target['refId']}"
                queries[key] = target["expr"].replace("$__rate_interval", RATE_WINDOW)
    return queries


@pytest.fixture
async def prometheus(stack: Stack, tmp_path: Path) -> AsyncIterator[str]:
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail("no prometheus on PATH: install Debian's prometheus package (.ci/run does)", pytrace=False)
    # Each process type is its own job, as in deploy/prometheus.
    scrape_configs = [
        {"job_name": name, "static_configs": [{"targets": [f"127.0.0.1:{stack.management_ports[name]}"]}]}
        for name in process_types()
    ]
    config = tmp_path / "prometheus.yml"
    config.write_text(json.dumps({"global": {"scrape_interval": "1s"}, "scrape_configs": scrape_configs}))
    port = free_port()
    process = ServiceProcess(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--enable-feature=exemplar-storage",
        ],
        env={},
    )
    await process.start()
    url = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http:

            async def ready() -> bool:
                try:
                    async with http.get(f"{url}/-/ready") as response:
                        return response.status == 200
                except aiohttp.ClientConnectionError:
                    return False

            await eventually(ready, timeout_seconds=30, description="prometheus ready")
        yield url
    finally:
        await process.stop()


async def drive_traffic(stack: Stack, http: aiohttp.ClientSession) -> None:
    customers = [
        Customer(http, stack.gateway_url, token) for token in await stack.tokens(["dash-0", "dash-1", "dash-2"])
    ]
    for number in range(30):
        customer = customers[number % len(customers)]
        order = (await customer.place()).order
        assert (await customer.order(order["id"])).status == 200
    assert await customers[0].orders()


async def series(http: aiohttp.ClientSession, prometheus: str, query: str) -> list[Any]:
    async with http.get(f"{prometheus}/api/v1/query", params={"query": query}) as response:
        answer = await response.json()
    assert answer["status"] == "success", f"{query}: {answer}"
    return list(answer["data"]["result"])


async def test_every_panel_of_every_dashboard_returns_series(stack: Stack, prometheus: str) -> None:
    queries = panel_queries()
    assert len(queries) >= 20, "the dashboards lost panels"
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
        await drive_traffic(stack, http)
        empty: list[str] = []

        async def all_answered() -> bool:
            empty[:] = [name for name, query in queries.items() if not await series(http, prometheus, query)]
            return not empty

        try:
            await eventually(all_answered, timeout_seconds=90, interval_seconds=1, description="every panel")
        except AssertionError:
            pytest.fail(f"panels without series: {empty}", pytrace=False)

        async with http.get(
            f"{prometheus}/api/v1/query_exemplars", params={"query": "dozen_order_accepted_to_notified_seconds_bucket"}
        ) as response:
            exemplars = (await response.json())["data"]
        assert exemplars, "Prometheus stored no exemplar for the accepted -> notified latency"
        assert "trace_id" in exemplars[0]["exemplars"][0]["labels"]
