"""The whole of Dozen started as it runs in production: one OS process per process type."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from shared.testing import ServiceProcess, free_port, wait_until_ready
from shared.testing.smtp import SmtpSink

BIN = Path(sys.executable).parent
JWT_SECRET = "end-to-end-secret-of-a-decent-length-for-hs256"  # pragma: allowlist secret


@dataclass
class Stack:
    gateway_url: str
    orders_database_url: str
    notifier_database_url: str
    smtp: SmtpSink
    token_env: dict[str, str]
    ports: dict[str, int]
    processes: dict[str, ServiceProcess] = field(default_factory=dict)

    async def kill_and_restart(self, name: str) -> None:
        """SIGKILL one process (no goodbye, no drain), then start it again as it was, on its port."""
        victim = self.processes[name]
        await victim.stop()
        successor = victim.twin()
        self.processes[name] = successor
        await successor.start()
        await wait_until_ready(self.ports[name], what=f"{name} after restart")

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


@asynccontextmanager
async def running_stack(
    *,
    orders_database_url: str,
    notifier_database_url: str,
    amqp_url: str,
    redis_url: str,
    names: Callable[[str], str],
    smtp: SmtpSink,
    telemetry_env: dict[str, str] | None = None,
) -> AsyncIterator[Stack]:
    """Every process type, started in dependency order; ``telemetry_env`` (OTEL_*) goes to all of them."""
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
        "GATEWAY_REDIS_URL": redis_url,
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
        ports=ports,
    )
    try:
        for name, (argv, env) in commands.items():
            process = ServiceProcess([str(BIN / argv[0]), *argv[1:]], env=env | (telemetry_env or {}))
            stack.processes[name] = process
            await process.start()
            await wait_until_ready(ports[name], what=name)
        yield stack
        # Every process type must stop cleanly on SIGTERM, in reverse order of start.
        for name, process in reversed(stack.processes.items()):
            process.send_signal(signal.SIGTERM)
            assert await process.wait(timeout_seconds=30) == 0, f"{name} did not exit 0:\n{process.output()}"
    finally:
        await asyncio.gather(*(process.stop() for process in stack.processes.values()))
