"""Stopping this machine's own backing servers for a while, and always starting them again."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from subprocess import DEVNULL
from urllib.parse import urlsplit

import asyncpg
import pytest

from shared.testing import eventually

LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}


async def _output(*argv: str) -> str:
    process = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    output, _ = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({process.returncode}): {output.decode(errors='replace')}")
    return output.decode().strip()


async def _run(*argv: str) -> None:
    await _output(*argv)


@asynccontextmanager
async def rabbitmq_stopped(amqp_url: str) -> AsyncIterator[None]:
    """The broker's application stopped (connections dropped, node kept), then started again,
    even when the block fails: later tests and the machine need their broker back."""
    control = shutil.which("rabbitmqctl")
    if urlsplit(amqp_url).hostname not in LOCAL_HOSTS or control is None:
        pytest.fail("stopping RabbitMQ needs TEST_AMQP_URL on this machine and rabbitmqctl on PATH", pytrace=False)
    await _run(control, "-q", "stop_app")
    try:
        yield
    finally:
        await _run(control, "-q", "start_app")
        await _run(control, "-q", "await_startup")


@asynccontextmanager
async def rabbitmq_crashed(amqp_url: str) -> AsyncIterator[None]:
    """The broker's Erlang VM killed with SIGKILL: no connection told, nothing written that was
    not on disk already; then the node started again as CI starts it, even when the block fails."""
    control, server = shutil.which("rabbitmqctl"), shutil.which("rabbitmq-server")
    if urlsplit(amqp_url).hostname not in LOCAL_HOSTS or control is None or server is None:
        pytest.fail("crashing RabbitMQ needs TEST_AMQP_URL on this machine and its tools on PATH", pytrace=False)
    vm = int(await _output(control, "-q", "eval", "list_to_integer(os:getpid())."))
    os.kill(vm, signal.SIGKILL)
    try:
        await eventually(
            lambda: None if Path(f"/proc/{vm}").exists() else True, timeout_seconds=30, description="the VM gone"
        )
        yield
    finally:
        await _run(server, "-detached")

        async def booted() -> bool | None:
            # Until the node registers, rabbitmqctl cannot reach it at all and fails at once.
            waiting = await asyncio.create_subprocess_exec(
                control, "-q", "await_startup", "--timeout", "10", stdout=DEVNULL, stderr=DEVNULL
            )
            return True if await waiting.wait() == 0 else None

        await eventually(booted, timeout_seconds=120, interval_seconds=1, description="RabbitMQ booted again")


@asynccontextmanager
async def rabbitmq_memory_alarm(amqp_url: str) -> AsyncIterator[None]:
    """The broker's memory alarm raised (its high watermark set next to nothing): RabbitMQ
    blocks every connection that publishes until it clears. Cleared afterwards, even when
    the block fails, by putting the watermark back as it was."""
    control = shutil.which("rabbitmqctl")
    if urlsplit(amqp_url).hostname not in LOCAL_HOSTS or control is None:
        pytest.fail("a RabbitMQ alarm needs TEST_AMQP_URL on this machine and rabbitmqctl on PATH", pytrace=False)
    watermark = await _output(control, "-q", "eval", "vm_memory_monitor:get_vm_memory_high_watermark().")
    await _run(control, "-q", "set_vm_memory_high_watermark", "0.000001")
    try:
        yield
    finally:
        await _run(control, "-q", "set_vm_memory_high_watermark", watermark)


def _cluster_version() -> str:
    # Debian keeps one folder per installed major version; the newest is the one running here.
    return sorted(Path("/etc/postgresql").iterdir(), key=lambda path: int(path.name))[-1].name


@asynccontextmanager
async def postgres_stopped(database_url: str, *, mode: str = "fast") -> AsyncIterator[None]:
    """This machine's PostgreSQL cluster stopped, then started again, even when the block
    fails. ``fast``: connections cut, a clean shutdown; ``immediate``: as a crash, no
    checkpoint, and crash recovery when it starts."""
    control = shutil.which("pg_ctlcluster")
    if urlsplit(database_url).hostname not in LOCAL_HOSTS or control is None:
        pytest.fail("stopping PostgreSQL needs TEST_DATABASE_URL on this machine and pg_ctlcluster", pytrace=False)
    version = _cluster_version()
    await _run(control, "--skip-systemctl-redirect", version, "main", "stop", "-m", mode)
    try:
        yield
    finally:
        await _run(control, "--skip-systemctl-redirect", version, "main", "start")


@asynccontextmanager
async def postgres_read_only(database_url: str) -> AsyncIterator[None]:
    """Every transaction on the server read-only (default_transaction_read_only, reloaded into
    every session), as a primary demoted in a failover answers; writable again afterwards,
    even when the block fails."""
    server = await asyncpg.connect(database_url)
    try:
        await server.execute("ALTER SYSTEM SET default_transaction_read_only = on")
        await server.execute("SELECT pg_reload_conf()")
        try:
            yield
        finally:
            await server.execute("ALTER SYSTEM RESET default_transaction_read_only")
            await server.execute("SELECT pg_reload_conf()")
    finally:
        await server.close()
