"""The whole of Dozen started as it runs in production: one OS process per process type."""

from __future__ import annotations

import asyncio
import signal
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import pytest

from harness.procfile import ProcessType, process_types
from harness.proxy import Endpoint, FaultProxy, ReadyInstances, fixed
from shared.testing import ServiceProcess, free_port, wait_until_ready
from shared.testing.amqp import AmqpNames
from shared.testing.databases import scratch_databases
from shared.testing.smtp import SmtpSink

BIN = Path(sys.executable).parent
JWT_SECRET = "end-to-end-secret-of-a-decent-length-for-hs256"  # pragma: allowlist secret
# What the gateway presents to orders web, and orders web asks of its callers.
ORDERS_API_TOKEN = "end-to-end-orders-credential-thirty-two-bytes"  # pragma: allowlist secret
# The board's demo sign-in (GATEWAY_DEMO_CUSTOMERS), for the browser tests.
DEMO_CUSTOMERS = ("alice", "bob")
# Long enough for a balancer polling readiness every 0.1 s to see it go red several times.
DRAIN_SECONDS = "1"

# How a process of a service is started: (service, arguments, environment) -> not yet started.
Launch = Callable[[str, Sequence[str], Mapping[str, str]], ServiceProcess]


def from_source(service: str, arguments: Sequence[str], env: Mapping[str, str]) -> ServiceProcess:
    """The service's console script as this checkout installed it (``make install``)."""
    return ServiceProcess([str(BIN / service), *arguments], env=env)


# How a pytest run starts Dozen's processes when something other than this checkout is
# tested: `make audit` runs the tests that prove a factor against the release it built.
LAUNCH = pytest.StashKey[Launch]()


@dataclass(frozen=True)
class Servers:
    """The backing servers a stack runs on: it makes databases of its own on the PostgreSQL
    server, and exchanges and queues of its own on RabbitMQ, and removes them afterwards."""

    postgres_url: str
    amqp_url: str
    redis_url: str


class MailServer(Protocol):
    """Where the notifier sends its emails: a sink that keeps them, or the benchmark's that counts."""

    @property
    def url(self) -> str: ...


@dataclass
class Stack:
    gateway_url: str
    orders_database_url: str
    notifier_database_url: str
    smtp: MailServer
    token_env: dict[str, str]
    # Per process: the port it serves on (an API, or a worker's management port), and the
    # one its probes and metrics answer on (an API's management port; a worker's one port).
    ports: dict[str, int]
    management_ports: dict[str, int]
    launch: Launch = from_source
    processes: dict[str, ServiceProcess] = field(default_factory=dict)
    # With proxied links only: the proxy on each link ("postgres", "rabbitmq", "redis", "orders-web"),
    # and the instances in rotation per process type ("gateway" for clients, "orders-web"
    # behind its proxy), as a Kubernetes Service would keep them by readiness.
    links: dict[str, FaultProxy] = field(default_factory=dict)
    rotations: dict[str, ReadyInstances] = field(default_factory=dict)

    @property
    def mailbox(self) -> SmtpSink:
        """The sink that keeps every email, to read and to make refuse (every harness's but the benchmark's)."""
        if not isinstance(self.smtp, SmtpSink):
            raise TypeError(f"this stack's mail server keeps nothing: {type(self.smtp).__name__}")
        return self.smtp

    def gateway_for_next_request(self) -> str | None:
        """Client-side round robin over the gateways ready now (None: none is); or the one gateway."""
        if "gateway" not in self.rotations:
            return self.gateway_url
        chosen = self.rotations["gateway"].choose()
        return None if chosen is None else f"http://{chosen[0]}:{chosen[1]}"

    async def start_instance(self, kind: str, env: Mapping[str, str] | None = None) -> str:
        """Another instance of ``kind`` on a port of its own (and with ``env`` on top of the
        first one's), put in rotation; its name."""
        name = f"{kind}-{sum(1 for known in self.processes if known.startswith(kind)) + 1}"
        port, management_port = allot_ports(process_types()[kind])
        process = self.processes[kind].twin({**(env or {}), **port_env(process_types()[kind], port, management_port)})
        self.processes[name], self.ports[name], self.management_ports[name] = process, port, management_port
        await process.start()
        await wait_until_ready(management_port, what=name, process=process)
        if kind in self.rotations:
            self.rotations[kind].endpoints.append(Endpoint(port, management_port))
        return name

    async def restart_gracefully(self, name: str, env: Mapping[str, str] | None = None) -> None:
        """SIGTERM (readiness red, drain, in-flight work finished), exit 0, then start it again
        (with ``env`` on top of its environment: a change of config)."""
        process = self.processes[name]
        process.send_signal(signal.SIGTERM)
        assert await process.wait(timeout_seconds=30) == 0, f"{name} did not exit 0:\n{process.output()}"
        successor = process.twin(env)
        self.processes[name] = successor
        await successor.start()
        await wait_until_ready(self.management_ports[name], what=f"{name} after restart", process=successor)

    async def kill_and_restart(self, name: str, *, while_down: Callable[[], Awaitable[None]] | None = None) -> None:
        """SIGKILL one process (no goodbye, no drain), then start it again as it was, on its port
        (``while_down``, if given, runs between the two: to see what the kill left behind)."""
        victim = self.processes[name]
        await victim.stop()
        if while_down is not None:
            await while_down()
        successor = victim.twin()
        self.processes[name] = successor
        await successor.start()
        await wait_until_ready(self.management_ports[name], what=f"{name} after restart", process=successor)

    async def admin(self, name: str, *command: str) -> ServiceProcess:
        """A one-off admin command of the same release with the same config as process ``name``
        (factor XII), run to its end; the caller checks its exit status."""
        process = self.launch(name.partition("-")[0], command, self.processes[name].env)
        await process.start()
        await process.wait(timeout_seconds=60)
        return process

    async def token(self, subject: str, *extra: str, env: dict[str, str] | None = None) -> str:
        process = self.launch("gateway", ["issue-token", "--subject", subject, *extra], env or self.token_env)
        await process.start()
        assert await process.wait(timeout_seconds=30) == 0, process.output()
        return process.lines[-1]

    async def tokens(self, subjects: Sequence[str], *, env: dict[str, str] | None = None) -> list[str]:
        """One token per subject, in order, from one run of the one-off (in ``env``, if given)."""
        arguments = [argument for subject in subjects for argument in ("--subject", subject)]
        process = self.launch("gateway", ["issue-token", *arguments], env or self.token_env)
        await process.start()
        assert await process.wait(timeout_seconds=30) == 0, process.output()
        assert len(process.lines) == len(subjects), process.output()
        return process.lines


def allot_ports(kind: ProcessType) -> tuple[int, int]:
    """Free ports for a process of ``kind``: one to serve on, and one for probes and metrics
    (the same one for a worker)."""
    port = free_port()
    return port, free_port() if kind.management_variable else port


def port_env(kind: ProcessType, port: int, management_port: int) -> dict[str, str]:
    """The variables that tell a process of ``kind`` its ports."""
    env = {kind.port_variable: str(port)}
    if kind.management_variable:
        env[kind.management_variable] = str(management_port)
    return env


async def _one_off(process: ServiceProcess) -> None:
    await process.start()
    assert await process.wait(timeout_seconds=60) == 0, process.output()


@asynccontextmanager
async def running_stack(
    servers: Servers,
    *,
    label: str,
    smtp: MailServer,
    extra_env: dict[str, str] | None = None,
    proxied_links: bool = False,
    launch: Launch = from_source,
) -> AsyncIterator[Stack]:
    """Every process type, started in dependency order, on databases, exchanges and queues of
    its own (``label`` and a run id in their names: concurrent runs never meet); ``extra_env``
    goes to every process on top of its config (OTEL_* variables, or a setting a test is about).

    With ``proxied_links``, the processes reach PostgreSQL, RabbitMQ, Redis and orders web through
    fault proxies (``Stack.links``), orders web and the gateway drain on SIGTERM, and both
    are kept in rotation by readiness (``Stack.rotations``); the tests themselves go direct.
    ``launch`` starts every process, one-offs included (default: this checkout's scripts).
    """
    run = f"{label}_{uuid.uuid4().hex[:8]}"
    names = AmqpNames(run.replace("_", "-"))
    databases = [f"{run}_{service}" for service in ("orders", "notifier")]
    async with AsyncExitStack() as resources:
        resources.push_async_callback(names.delete_all, servers.amqp_url)
        orders_database_url, notifier_database_url = await resources.enter_async_context(
            scratch_databases(servers.postgres_url, databases)
        )
        allotted = {name: allot_ports(kind) for name, kind in process_types().items()}
        ports = {name: port for name, (port, _) in allotted.items()}
        management_ports = {name: management_port for name, (_, management_port) in allotted.items()}
        links: dict[str, FaultProxy] = {}
        rotations: dict[str, ReadyInstances] = {}
        if proxied_links:
            for kind in ("gateway", "orders-web"):
                endpoint = Endpoint(ports[kind], management_ports[kind])
                rotations[kind] = await resources.enter_async_context(ReadyInstances([endpoint]))
            links["postgres"] = await resources.enter_async_context(FaultProxy(fixed(orders_database_url)))
            links["rabbitmq"] = await resources.enter_async_context(FaultProxy(fixed(servers.amqp_url)))
            links["redis"] = await resources.enter_async_context(FaultProxy(fixed(servers.redis_url)))
            links["orders-web"] = await resources.enter_async_context(FaultProxy(rotations["orders-web"].choose))
        stack = Stack(
            gateway_url=f"http://127.0.0.1:{ports['gateway']}",
            orders_database_url=orders_database_url,
            notifier_database_url=notifier_database_url,
            smtp=smtp,
            token_env={"GATEWAY_JWT_SECRET": JWT_SECRET},
            ports=ports,
            management_ports=management_ports,
            launch=launch,
            links=links,
            rotations=rotations,
        )
        async with _processes(
            stack, amqp_url=servers.amqp_url, redis_url=servers.redis_url, names=names, extra_env=extra_env or {}
        ):
            yield stack


def _dialled(stack: Stack, link: str, url: str) -> str:
    return stack.links[link].url_for(url) if link in stack.links else url


@asynccontextmanager
async def _processes(
    stack: Stack, *, amqp_url: str, redis_url: str, names: Callable[[str], str], extra_env: dict[str, str]
) -> AsyncIterator[None]:
    ports = stack.ports
    commands = process_commands(
        orders_database_url=_dialled(stack, "postgres", stack.orders_database_url),
        notifier_database_url=_dialled(stack, "postgres", stack.notifier_database_url),
        amqp_url=_dialled(stack, "rabbitmq", amqp_url),
        redis_url=_dialled(stack, "redis", redis_url),
        smtp_url=stack.smtp.url,
        orders_web_url=_dialled(stack, "orders-web", f"http://127.0.0.1:{ports['orders-web']}"),
        ports=ports,
        management_ports=stack.management_ports,
        names=names,
        drain=bool(stack.rotations),
    )
    orders_database_url, notifier_database_url = stack.orders_database_url, stack.notifier_database_url
    await _one_off(stack.launch("orders", ["migrate"], {"ORDERS_DATABASE_URL": orders_database_url}))
    await _one_off(stack.launch("notifier", ["migrate"], {"NOTIFIER_DATABASE_URL": notifier_database_url}))
    try:
        for name, (argv, env) in commands.items():
            process = stack.launch(argv[0], argv[1:], env | extra_env)
            stack.processes[name] = process
            await process.start()
            await wait_until_ready(stack.management_ports[name], what=name, process=process)
        yield
        # Every process type must stop cleanly on SIGTERM, in reverse order of start (one a test
        # already stopped must have stopped cleanly too).
        for name, process in reversed(stack.processes.items()):
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
            assert await process.wait(timeout_seconds=30) == 0, f"{name} did not exit 0:\n{process.output()}"
    finally:
        await asyncio.gather(*(process.stop() for process in stack.processes.values()))


def process_commands(
    *,
    orders_database_url: str,
    notifier_database_url: str,
    amqp_url: str,
    redis_url: str,
    smtp_url: str,
    orders_web_url: str,
    ports: Mapping[str, int],
    management_ports: Mapping[str, int],
    names: Callable[[str], str],
    drain: bool = False,
) -> dict[str, tuple[list[str], dict[str, str]]]:
    """Each process type's command and the whole environment it is given, in start order (the
    Procfile's): what CI runs Dozen with (``make parity`` reads it as the CI environment)."""
    orders_exchange, notifier_exchange = names("orders.events"), names("notifier.events")
    drained = {"SHUTDOWN_DRAIN_SECONDS": DRAIN_SECONDS} if drain else {}
    orders_env = {
        "ORDERS_DATABASE_URL": orders_database_url,
        "ORDERS_AMQP_URL": amqp_url,
        "ORDERS_API_TOKEN": ORDERS_API_TOKEN,
        "ORDERS_EVENTS_EXCHANGE": orders_exchange,
        "ORDERS_NOTIFICATIONS_EXCHANGE": notifier_exchange,
        "ORDERS_QUEUE": names("orders.notification-sent"),
    }
    notifier_env = {
        "NOTIFIER_DATABASE_URL": notifier_database_url,
        "NOTIFIER_AMQP_URL": amqp_url,
        "NOTIFIER_SMTP_URL": smtp_url,
        "NOTIFIER_ORDERS_EXCHANGE": orders_exchange,
        "NOTIFIER_EVENTS_EXCHANGE": notifier_exchange,
        "NOTIFIER_QUEUE": names("notifier.order-created"),
    }
    gateway_env = {
        "GATEWAY_JWT_SECRET": JWT_SECRET,
        "GATEWAY_ORDERS_URL": orders_web_url,
        "GATEWAY_ORDERS_TOKEN": ORDERS_API_TOKEN,
        "GATEWAY_REDIS_URL": redis_url,
        "GATEWAY_DEMO_CUSTOMERS": ",".join(DEMO_CUSTOMERS),
    }
    service_env = {"orders": orders_env, "notifier": notifier_env, "gateway": gateway_env}
    commands = {}
    for name, kind in process_types().items():
        env = service_env[kind.service] | port_env(kind, ports[name], management_ports[name])
        if kind.command == "web":
            # Web processes sit behind a balancer: they drain before they stop listening.
            env |= {f"{kind.service.upper()}_{variable}": value for variable, value in drained.items()}
        commands[name] = ([kind.service, *kind.arguments], env)
    return commands
