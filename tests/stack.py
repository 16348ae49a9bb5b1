"""The whole of Dozen started as it runs in production: one OS process per process type."""

from __future__ import annotations

import asyncio
import signal
import socket
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from shared.testing import ServiceProcess, eventually
from shared.testing.smtp import SmtpSink

BIN = Path(sys.executable).parent
JWT_SECRET = "end-to-end-secret-of-a-decent-length-for-hs256"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Stack:
    gateway_url: str
    orders_database_url: str
    notifier_database_url: str
    smtp: SmtpSink
    token_env: dict[str, str]
    processes: dict[str, ServiceProcess] = field(default_factory=dict)

    async def token(self, subject: str, *extra: str, env: dict[str, str] | None = None) -> str:
        process = ServiceProcess(
            [str(BIN / "gateway"), "issue-token", "--subject", subject, *extra], env=env or self.token_env
        )
        await process.start()
        assert await process.wait(timeout_seconds=30) == 0, process.output()
        return process.lines[-1]


async def _one_off(argv: list[str], env: dict[str, str]) -> None:
    process = ServiceProcess(argv, env=env)
    await process.start()
    assert await process.wait(timeout_seconds=60) == 0, process.output()


async def _ready(http: aiohttp.ClientSession, port: int) -> bool:
    try:
        async with http.get(f"http://127.0.0.1:{port}/readyz") as response:
            return response.status == 200
    except aiohttp.ClientConnectionError:
        return False


async def _await_ready(http: aiohttp.ClientSession, port: int, name: str) -> None:
    await eventually(lambda: _ready(http, port), timeout_seconds=30, description=f"{name} ready")


@asynccontextmanager
async def running_stack(
    *, orders_database_url: str, notifier_database_url: str, amqp_url: str, names: Callable[[str], str], smtp: SmtpSink
) -> AsyncIterator[Stack]:
    orders_exchange, notifier_exchange = names("orders.events"), names("notifier.events")
    orders_env = {
        "ORDERS_DATABASE_URL": orders_database_url,
        "ORDERS_AMQP_URL": amqp_url,
        "ORDERS_EVENTS_EXCHANGE": orders_exchange,
        "ORDERS_NOTIFICATIONS_EXCHANGE": notifier_exchange,
        "ORDERS_NOTIFICATIONS_QUEUE": names("orders.notification-sent"),
    }
    notifier_env = {
        "NOTIFIER_DATABASE_URL": notifier_database_url,
        "NOTIFIER_AMQP_URL": amqp_url,
        "NOTIFIER_SMTP_URL": smtp.url,
        "NOTIFIER_ORDERS_EXCHANGE": orders_exchange,
        "NOTIFIER_EVENTS_EXCHANGE": notifier_exchange,
        "NOTIFIER_QUEUE": names("notifier.order-created"),
    }
    ports = {name: free_port() for name in ("orders-web", "orders-relay", "orders-worker", "notifier", "gateway")}
    gateway_env = {
        "GATEWAY_JWT_SECRET": JWT_SECRET,
        "GATEWAY_ORDERS_URL": f"http://127.0.0.1:{ports['orders-web']}",
        "GATEWAY_PORT": str(ports["gateway"]),
    }
    # Consumers first: each declares its own queue, so nothing published meanwhile is unroutable.
    commands = {
        "orders-worker": (["orders", "worker"], orders_env | {"ORDERS_PORT": str(ports["orders-worker"])}),
        "notifier": (["notifier", "worker"], notifier_env | {"NOTIFIER_PORT": str(ports["notifier"])}),
        "orders-relay": (["orders", "relay"], orders_env | {"ORDERS_PORT": str(ports["orders-relay"])}),
        "orders-web": (["orders", "web"], orders_env | {"ORDERS_PORT": str(ports["orders-web"])}),
        "gateway": (["gateway", "web"], gateway_env),
    }
    await _one_off([str(BIN / "orders"), "migrate"], {"ORDERS_DATABASE_URL": orders_database_url})
    await _one_off([str(BIN / "notifier"), "migrate"], {"NOTIFIER_DATABASE_URL": notifier_database_url})
    stack = Stack(
        gateway_url=f"http://127.0.0.1:{ports['gateway']}",
        orders_database_url=orders_database_url,
        notifier_database_url=notifier_database_url,
        smtp=smtp,
        token_env={"GATEWAY_JWT_SECRET": JWT_SECRET},
    )
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http:
            for name, (argv, env) in commands.items():
                process = ServiceProcess([str(BIN / argv[0]), *argv[1:]], env=env)
                stack.processes[name] = process
                await process.start()
                await _await_ready(http, ports[name], name)
        yield stack
        # Every process type must stop cleanly on SIGTERM, in reverse order of start.
        for name, process in reversed(stack.processes.items()):
            process.send_signal(signal.SIGTERM)
            assert await process.wait(timeout_seconds=30) == 0, f"{name} did not exit 0:\n{process.output()}"
    finally:
        await asyncio.gather(*(process.stop() for process in stack.processes.values()))
