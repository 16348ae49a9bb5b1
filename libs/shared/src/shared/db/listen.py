"""LISTEN on a PostgreSQL channel over a connection of its own, for as long as the process runs."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import asyncpg
from opentelemetry.instrumentation.utils import suppress_instrumentation

from shared.db.unavailable import UNAVAILABLE_ERRORS

log = logging.getLogger(__name__)

# The database out of reach, or refusing anything for now: wait and connect again.
_LISTEN_FAILED: tuple[type[BaseException], ...] = (asyncpg.PostgresError, *UNAVAILABLE_ERRORS)


async def first_of(*events: asyncio.Event | None, seconds: float | None) -> None:
    """Return when any event is set, or after ``seconds`` (None: no time limit)."""
    waiters = [asyncio.ensure_future(event.wait()) for event in events if event is not None]
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()


async def keep_listening(
    url: str,
    channel: str,
    *,
    on_notify: Callable[[str], None],
    on_listening: Callable[[], None],
    stop: asyncio.Event,
    retry_seconds: float,
) -> None:
    """Call ``on_notify`` with each notification's payload until ``stop``, reconnecting when
    the connection drops. ``on_listening`` is called each time listening (re)starts: whatever
    was notified while nobody listened is gone, and the caller catches up its own way."""
    # A span per notification would say nothing the work it wakes does not say.
    with suppress_instrumentation():
        while not stop.is_set():
            lost = asyncio.Event()
            connection = None
            try:
                connection = await asyncpg.connect(url, timeout=retry_seconds * 5)
                connection.add_termination_listener(lambda _connection, lost=lost: lost.set())
                await connection.add_listener(channel, lambda *args: on_notify(args[-1]))
                on_listening()
                await first_of(stop, lost, seconds=None)
            except _LISTEN_FAILED as exc:
                log.warning("LISTEN connection failed", extra={"channel": channel, "error": type(exc).__name__})
            finally:
                if connection is not None and not connection.is_closed():
                    await connection.close(timeout=1)
            await first_of(stop, seconds=retry_seconds)
