"""Small probes tests use against real servers: a free port, readiness, one query, a queue's contents."""

from __future__ import annotations

import random
import socket
from typing import Any

import aiohttp
import asyncpg
from aio_pika.abc import AbstractIncomingMessage, AbstractQueue

from shared.testing.polling import eventually
from shared.testing.processes import ServiceProcess

# Below Linux's ephemeral range (32768-60999), so that no outgoing connection of a busy test can
# take a port between the moment it is chosen and the moment its server binds it.
_UNEPHEMERAL_PORTS = range(20000, 32768)
_handed_out: set[int] = set()


def free_port() -> int:
    """A loopback port nobody listens on right now, never handed out before by this process
    (a port asked for twice in a row by the kernel's own choice can come back the same)."""
    for _ in range(1000):
        port = random.choice(_UNEPHEMERAL_PORTS)  # noqa: S311 - spreading ports, not a secret
        if port in _handed_out:
            continue
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError(f"no free loopback port in {_UNEPHEMERAL_PORTS} after 1000 tries")


async def is_ready(port: int) -> bool:
    """Whether a Dozen process on ``port`` answers /readyz with 200."""
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http,
            http.get(f"http://127.0.0.1:{port}/readyz") as response,
        ):
            return response.status == 200
    except aiohttp.ClientConnectionError:
        return False


async def wait_until_ready(
    port: int, *, what: str, process: ServiceProcess | None = None, timeout_seconds: float = 30
) -> None:
    """Until the Dozen process on ``port`` is ready. Given the ``process``, a failure to start says
    why in the process's own words: its exit status and last lines (a config error, exit 78)
    at once if it exits, and what it printed if it is still not ready at the deadline."""

    async def ready() -> bool:
        if process is not None and process.returncode is not None:
            raise AssertionError(
                f"{what} exited {process.returncode} before it was ready; it said:\n{process.output()}"
            )
        return await is_ready(port)

    try:
        await eventually(ready, timeout_seconds=timeout_seconds, description=f"{what} ready")
    except AssertionError as failure:
        if process is None or process.returncode is not None:
            raise
        raise AssertionError(f"{failure}; it said:\n{process.output()}") from None


async def fetchval(url: str, query: str, *args: object) -> Any:
    """One value from one query on a connection of its own."""
    connection = await asyncpg.connect(url)
    try:
        return await connection.fetchval(query, *args)
    finally:
        await connection.close()


async def fetch(url: str, query: str, *args: object) -> list[asyncpg.Record]:
    """Every row of one query on a connection of its own."""
    connection = await asyncpg.connect(url)
    try:
        return await connection.fetch(query, *args)
    finally:
        await connection.close()


async def execute(url: str, script: str) -> None:
    connection = await asyncpg.connect(url)
    try:
        await connection.execute(script)
    finally:
        await connection.close()


async def drain(queue: AbstractQueue) -> list[AbstractIncomingMessage]:
    """Everything waiting in ``queue`` now, taken off it."""
    messages = []
    while (message := await queue.get(no_ack=True, fail=False)) is not None:
        messages.append(message)
    return messages
