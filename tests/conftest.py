"""End-to-end tests: every Dozen process as a real OS process. Figures are reported at the end."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestServer

from harness.faults import Targets
from harness.stack import LAUNCH, Servers, Stack, from_source, running_stack
from harness.switchboard import DRAIN_TIMEOUT_SECONDS, Switchboard, create_app
from shared.testing import free_port
from shared.testing.smtp import SmtpSink

pytest_plugins = ["shared.testing.plugin"]

# What the tests measured, printed after the run (latencies are reported, never asserted).
FIGURES: list[str] = []


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if FIGURES:
        terminalreporter.section("measured")
        for line in FIGURES:
            terminalreporter.write_line(line)


@pytest.fixture
def extra_env() -> dict[str, str]:
    """Variables for every process on top of its config (OTEL_*, a setting under test); none by
    default (tracing on, nothing exported)."""
    return {}


@pytest.fixture
def proxied_links() -> bool:
    """Whether the processes reach each other and their backing services through fault proxies."""
    return False


@pytest.fixture
async def stack(
    request: pytest.FixtureRequest,
    postgres_server_url: str,
    amqp_url: str,
    redis_url: str,
    smtp_sink: SmtpSink,
    extra_env: dict[str, str],
    proxied_links: bool,
) -> AsyncIterator[Stack]:
    """Every Dozen process, running, on databases, exchanges and an SMTP server of this test's own."""
    async with running_stack(
        Servers(postgres_server_url, amqp_url, redis_url),
        label="test",
        smtp=smtp_sink,
        extra_env=extra_env,
        proxied_links=proxied_links,
        launch=request.config.stash.get(LAUNCH, from_source),
    ) as running:
        yield running


@pytest.fixture
def faults_port() -> int:
    return free_port()


@pytest.fixture
async def switchboard(stack: Stack, faults_port: int) -> AsyncIterator[Switchboard]:
    """`make dev`'s switchboard, over this stack's mail server and its processes (ours)."""
    board = Switchboard(
        Targets(
            stack.mailbox,
            root_pid=os.getpid(),
            gateway_url=stack.gateway_url,
            issue_tokens=stack.tokens,
            database_urls={"orders": stack.orders_database_url, "notifier": stack.notifier_database_url},
        ),
        stack.orders_database_url,
        drain_timeout_seconds=DRAIN_TIMEOUT_SECONDS,
    )
    stack.mailbox.on_accepted = board.emailed
    async with TestServer(create_app(board), port=faults_port):
        yield board
