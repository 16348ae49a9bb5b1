"""The gateway as real OS processes: the web process and the issue-token one-off."""

from __future__ import annotations

import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from gateway.settings import GatewaySettings
from gateway.tokens import verify_token
from shared.testing import ServiceProcess, free_port, wait_until_ready

from .support import ORDERS_TOKEN, SECRET, OrdersStandIn, redis_url

GATEWAY_SCRIPT = str(Path(sys.executable).with_name("gateway"))


@pytest.fixture
async def orders_url() -> AsyncIterator[str]:
    async with TestServer(OrdersStandIn().app()) as server:
        yield str(server.make_url("/"))


async def issue(subject: str, env: dict[str, str]) -> ServiceProcess:
    process = ServiceProcess([GATEWAY_SCRIPT, "issue-token", "--subject", subject], env=env)
    await process.start()
    await process.wait(timeout_seconds=30)
    return process


async def test_web_serves_tokens_from_issue_token_and_exits_zero_on_sigterm(orders_url: str) -> None:
    port, management_port = free_port(), free_port()
    env = {
        "GATEWAY_JWT_SECRET": SECRET,
        "GATEWAY_PORT": str(port),
        "GATEWAY_MANAGEMENT_PORT": str(management_port),
        "GATEWAY_ORDERS_URL": orders_url,
        "GATEWAY_ORDERS_TOKEN": ORDERS_TOKEN,
        "GATEWAY_REDIS_URL": redis_url(),
    }
    issued = await issue("alice", {"GATEWAY_JWT_SECRET": SECRET})
    assert issued.returncode == 0, issued.output()
    [token] = issued.lines
    web = ServiceProcess([GATEWAY_SCRIPT, "web"], env=env)
    await web.start()
    try:
        await wait_until_ready(management_port, what="gateway", process=web)
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http,
            http.get(
                f"http://127.0.0.1:{port}/api/v1/orders", headers={"Authorization": f"Bearer {token}"}
            ) as response,
        ):
            assert response.status == 200
            assert await response.json() == {"items": [], "next_cursor": None}
        web.send_signal(signal.SIGTERM)
        assert await web.wait(timeout_seconds=20) == 0, web.output()
    finally:
        await web.stop()


async def test_issue_token_refuses_an_unsafe_subject() -> None:
    issued = await issue("alice@example.com, bob", {"GATEWAY_JWT_SECRET": SECRET})

    assert issued.returncode == 1
    assert issued.stderr_lines[-1].startswith("gateway issue-token: the subject must be")


async def test_issue_token_refuses_a_lifetime_past_the_maximum() -> None:
    process = ServiceProcess(
        [GATEWAY_SCRIPT, "issue-token", "--subject", "alice", "--ttl-seconds", "86401"],
        env={"GATEWAY_JWT_SECRET": SECRET},
    )
    await process.start()

    assert await process.wait(timeout_seconds=30) == 1
    assert process.stderr_lines[-1] == (
        "gateway issue-token: --ttl-seconds must be between 1 and 86400 (GATEWAY_JWT_MAX_LIFETIME_SECONDS)"
    )
    assert process.lines == []


@pytest.mark.parametrize(
    ("command", "missing"),
    [
        (
            ["web"],
            [
                "GATEWAY_JWT_SECRET",
                "GATEWAY_PORT",
                "GATEWAY_MANAGEMENT_PORT",
                "GATEWAY_ORDERS_URL",
                "GATEWAY_ORDERS_TOKEN",
                "GATEWAY_REDIS_URL",
            ],
        ),
        (["issue-token", "--subject", "a"], ["GATEWAY_JWT_SECRET"]),
    ],
)
async def test_empty_environment_lists_every_missing_variable_and_exits_78(
    command: list[str], missing: list[str]
) -> None:
    process = ServiceProcess([GATEWAY_SCRIPT, *command], env={})
    await process.start()

    assert await process.wait(timeout_seconds=30) == 78
    assert sorted(process.stderr_lines[:-1]) == sorted(
        f"config error: {name}: required but not set" for name in missing
    )


async def test_a_key_too_short_for_the_algorithm_is_a_config_error_that_never_shows_the_key() -> None:
    short_for_hs512 = "k" * 40
    process = ServiceProcess(
        [GATEWAY_SCRIPT, "issue-token", "--subject", "alice"],
        env={"GATEWAY_JWT_SECRET": short_for_hs512, "GATEWAY_JWT_ALGORITHM": "HS512"},
    )
    await process.start()

    assert await process.wait(timeout_seconds=30) == 78
    assert "GATEWAY_JWT_SECRET must be at least 64 bytes for HS512" in process.stderr_lines[0]
    assert short_for_hs512 not in "\n".join(process.stderr_lines)


async def test_issue_token_gives_one_token_per_subject_in_order_or_none() -> None:
    env = {"GATEWAY_JWT_SECRET": SECRET}
    process = ServiceProcess([GATEWAY_SCRIPT, "issue-token", "--subject", "alice", "--subject", "bob"], env=env)
    await process.start()
    assert await process.wait(timeout_seconds=30) == 0, process.output()
    settings = GatewaySettings(jwt_secret=SECRET)
    assert [verify_token(settings, token) for token in process.lines] == ["alice", "bob"]

    refused = ServiceProcess([GATEWAY_SCRIPT, "issue-token", "--subject", "alice", "--subject", "b@d"], env=env)
    await refused.start()
    assert await refused.wait(timeout_seconds=30) == 1
    assert refused.lines == []
