"""Server-Sent Events: long-lived answers, bounded in number and in time.

A stream holds its place for minutes, so it is not an in-flight request (whose bound follows
latency): it takes one of a fixed number of stream slots instead, and past them the next is
refused at once (503, Retry-After). Each stream ends after a while; the client opens another,
which re-checks its credential and spreads streams again over the replicas.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import contextmanager

import aiohttp
from aiohttp import web
from aiohttp_sse import EventSourceResponse, sse_response
from prometheus_client import Gauge

from shared.web.admission import RETRY_AFTER_SECONDS
from shared.web.problems import Problem

# A keep-alive comment this often: proxies keep the connection, and a client that has gone is noticed.
PING_SECONDS = 15.0
# A client that takes no data for this long is stalled: its connection is aborted.
SEND_TIMEOUT_SECONDS = 30.0
OPEN_STREAMS = Gauge("dozen_http_server_open_streams", "Server-Sent Event streams open now.")
# An event: its type, and its data (one line of JSON).
Event = tuple[str, str]


class StreamSlots:
    """At most ``maximum`` streams open at once in this process."""

    def __init__(self, maximum: int) -> None:
        self._maximum = maximum
        self._open = 0

    @contextmanager
    def taken(self) -> Iterator[None]:
        if self._open >= self._maximum:
            raise Problem(
                503,
                "Service Unavailable",
                "Too many update streams are open; retry after the given seconds.",
                headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
            )
        self._open += 1
        OPEN_STREAMS.inc()
        try:
            yield
        finally:
            self._open -= 1
            OPEN_STREAMS.dec()


async def send_events(
    request: web.Request,
    events: AsyncIterator[Event],
    *,
    max_seconds: float,
    headers: Mapping[str, str] | None = None,
) -> web.StreamResponse:
    """Stream ``events`` until they end, the client goes, or ``max_seconds`` pass."""
    async with sse_response(
        request, headers=headers, ping_interval=PING_SECONDS, send_timeout=SEND_TIMEOUT_SECONDS
    ) as stream:
        pumping = asyncio.ensure_future(_pump(stream, events))
        # Its keep-alive comments stop when a write fails: the client has gone.
        gone = asyncio.ensure_future(stream.wait())
        try:
            await asyncio.wait({pumping, gone}, timeout=max_seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            pumping.cancel()
            gone.cancel()
            await asyncio.gather(pumping, gone, return_exceptions=True)
    return stream


async def _pump(stream: EventSourceResponse, events: AsyncIterator[Event]) -> None:
    try:
        async for event, data in events:
            await stream.send(data, event=event)
    except (ConnectionResetError, TimeoutError):
        pass  # the client has gone, or stalled (its connection is aborted)


async def read_events(content: aiohttp.StreamReader) -> AsyncIterator[Event]:
    """The events of a stream ``send_events`` writes (one data line each; comments skipped)."""
    event = "message"
    data: list[str] = []
    async for raw in content:
        line = raw.decode().rstrip("\r\n")
        if not line:
            if data:
                yield event, "\n".join(data)
            event, data = "message", []
        elif not line.startswith(":"):
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "event":
                event = value
            elif name == "data":
                data.append(value)
