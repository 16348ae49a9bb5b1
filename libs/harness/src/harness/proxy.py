"""A TCP proxy to put between a process and what it dials, for fault injection.

It adds latency, blackholes (holds every byte, and new connections, until it heals), goes
down (resets every connection and refuses new ones, as a stopped server) and resets
connections on demand, and picks its upstream per connection,
so that with :class:`ReadyInstances` it stands in for a Kubernetes Service in front of
several instances: new connections go only to instances whose /readyz answers 200.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import socket
import struct
from collections.abc import AsyncIterator, Callable, Iterable
from types import TracebackType
from typing import NamedTuple
from urllib.parse import urlsplit, urlunsplit

from shared.testing.probes import free_port, is_ready

Address = tuple[str, int]
_CHUNK = 64 * 1024


def fixed(url: str) -> Callable[[], Address]:
    """Always the host and port of ``url``."""
    parts = urlsplit(url)
    if parts.hostname is None or parts.port is None:
        raise ValueError("the URL needs a host and a port")  # never echo it: it may hold a password
    address = (parts.hostname, parts.port)
    return lambda: address


def _reset(writer: asyncio.StreamWriter) -> None:
    # Linger 0: close() sends RST, as a crashed peer or a middlebox dropping state would.
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class FaultProxy:
    """Listens on a loopback port of its own; each connection goes to ``upstream()``, or is
    refused when that is None (no instance ready)."""

    def __init__(self, upstream: Callable[[], Address | None]) -> None:
        self._upstream = upstream
        self.port = free_port()
        # Added to every chunk in each direction while set: the fault, not synchronisation.
        self.latency_seconds = 0.0
        # Cleared while blackholed: nothing moves, as when a network drops every packet.
        self._flowing = asyncio.Event()
        self._flowing.set()
        # Set while down: every connection refused, as by a stopped server.
        self._down = False
        self.connections_made = 0
        self._open: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        self._server: asyncio.Server | None = None

    def url_for(self, url: str) -> str:
        """``url`` with its host and port replaced by this proxy's: credentials and path kept."""
        parts = urlsplit(url)
        credentials = parts.netloc.rpartition("@")[0]
        netloc = f"{credentials}@127.0.0.1:{self.port}" if credentials else f"127.0.0.1:{self.port}"
        return urlunsplit(parts._replace(netloc=netloc))

    async def __aenter__(self) -> FaultProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        assert self._server is not None
        self._server.close()
        self.reset_all()
        await self._server.wait_closed()

    @contextlib.asynccontextmanager
    async def blackholed(self) -> AsyncIterator[None]:
        """Every byte in either direction, and every new connection, held until the block
        ends; then all of it goes through, as TCP retransmits once a network heals."""
        self._flowing.clear()
        try:
            yield
        finally:
            self._flowing.set()

    @contextlib.asynccontextmanager
    async def down(self) -> AsyncIterator[None]:
        """What a stopped server looks like from its clients until the block ends: every open
        connection reset, and every new one refused at once."""
        self._down = True
        self.reset_all()
        try:
            yield
        finally:
            self._down = False

    def reset_all(self) -> int:
        """Reset every open connection, both ends at once; return how many there were."""
        pairs = list(self._open)
        for client, upstream in pairs:
            _reset(client)
            _reset(upstream)
        return len(pairs)

    async def _accept(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        await self._flowing.wait()
        address = None if self._down else self._upstream()
        if address is None:
            _reset(client_writer)
            return
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*address)
        except OSError:
            _reset(client_writer)
            return
        self.connections_made += 1
        pair = (client_writer, upstream_writer)
        self._open.add(pair)
        try:
            pumps = [
                asyncio.create_task(self._pump(client_reader, upstream_writer)),
                asyncio.create_task(self._pump(upstream_reader, client_writer)),
            ]
            # Either side ending ends the connection: these protocols never half-close.
            _, pending = await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)
        finally:
            self._open.discard(pair)
            for writer in pair:
                writer.close()

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            while chunk := await reader.read(_CHUNK):
                if self.latency_seconds:
                    await asyncio.sleep(self.latency_seconds)
                await self._flowing.wait()
                writer.write(chunk)
                await writer.drain()


class Endpoint(NamedTuple):
    """An instance on loopback: the port it serves on, and the one its /readyz answers on."""

    port: int
    probe_port: int


class ReadyInstances:
    """Round robin over the instances whose /readyz answers 200 now, as polled every
    ``interval_seconds`` — what a Service's endpoints do with readiness."""

    def __init__(self, endpoints: Iterable[Endpoint] = (), *, interval_seconds: float = 0.1) -> None:
        self.endpoints: list[Endpoint] = list(endpoints)
        self._interval = interval_seconds
        self._ready: list[int] = []
        self._turn = itertools.count()
        self._poller: asyncio.Task[None] | None = None

    async def __aenter__(self) -> ReadyInstances:
        await self._poll_once()
        self._poller = asyncio.create_task(self._poll())
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        assert self._poller is not None
        self._poller.cancel()
        await asyncio.gather(self._poller, return_exceptions=True)

    @property
    def ready_ports(self) -> list[int]:
        """The serving ports of the instances in rotation now."""
        return list(self._ready)

    def choose(self) -> Address | None:
        ready = self._ready
        return ("127.0.0.1", ready[next(self._turn) % len(ready)]) if ready else None

    async def _poll_once(self) -> None:
        endpoints = list(self.endpoints)
        answers = await asyncio.gather(
            *(is_ready(endpoint.probe_port) for endpoint in endpoints), return_exceptions=True
        )
        self._ready = [endpoint.port for endpoint, ready in zip(endpoints, answers, strict=True) if ready is True]

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self._interval)  # the polling period of a readiness probe
            await self._poll_once()
