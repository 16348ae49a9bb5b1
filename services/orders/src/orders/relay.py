"""The relay process: moves outbox rows to RabbitMQ, each marked published only after its confirm.

A crash after a publish but before the mark commits leaves the row unpublished, so it
is published again: a duplicate, which consumers drop by event id, never a loss.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
from aiohttp import web
from opentelemetry import context, propagate
from opentelemetry.context import Context
from opentelemetry.instrumentation.utils import suppress_instrumentation

from orders.app import database
from orders.keys import AMQP, DB_POOL, RELAY_SETTINGS
from orders.metrics import (
    OUTBOX_BACKLOG,
    OUTBOX_OLDEST_AGE,
    OUTBOX_PARKED,
    OUTBOX_PUBLISH_FAILURES,
    OUTBOX_PUBLISHED,
)
from orders.outbox import NOTIFY_CHANNEL, OutboxRow, Refused, backlog, claim_batch
from orders.settings import RelaySettings
from shared.db import UNAVAILABLE_ERRORS, Pool
from shared.db.listen import first_of, keep_listening
from shared.events import CONTENT_TYPE
from shared.messaging import (
    Nacked,
    Publisher,
    RetryPolicy,
    Unroutable,
    amqp_connection,
    declare_event_exchange,
    open_confirming_channel,
)
from shared.web import create_base_app
from shared.web.supervision import supervise

log = logging.getLogger(__name__)

# The database out of reach, or refusing anything for now: wait and try again.
OUTBOX_UNAVAILABLE: tuple[type[BaseException], ...] = (asyncpg.PostgresError, *UNAVAILABLE_ERRORS)


class Relay:
    def __init__(
        self,
        pool: Pool,
        publisher: Publisher,
        *,
        batch_size: int,
        poll_interval_seconds: float,
        retry: RetryPolicy,
        linger_seconds: float = 0.0,
    ) -> None:
        self._retry = retry
        self._pool = pool
        self._publisher = publisher
        self._batch_size = batch_size
        self._poll_interval = poll_interval_seconds
        self._linger = linger_seconds
        self._wake = asyncio.Event()

    def wake(self) -> None:
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Publish until ``stop`` is set; a batch under way is always finished first."""
        while not stop.is_set():
            # Cleared before claiming, so a commit notified meanwhile wakes the next wait.
            self._wake.clear()
            try:
                published, failed = await self.publish_batch()
            except OUTBOX_UNAVAILABLE as exc:
                log.warning("outbox unavailable; retrying", extra={"error": f"{type(exc).__name__}: {exc}"})
                published, failed = 0, 1
            except Exception:
                # Whatever it was, the rows stay in the outbox: keep trying, loudly, rather
                # than end the loop and leave a process that looks alive but relays nothing.
                log.exception("outbox batch failed; retrying")
                published, failed = 0, 1
            if published == self._batch_size and not failed:
                continue  # a backlog: the next batch at once
            await first_of(stop, self._wake if not failed else None, seconds=self._poll_interval)
            # Woken by a commit: the ones right behind it go out in the same batch.
            await first_of(stop, seconds=self._linger)

    async def publish_batch(self) -> tuple[int, int]:
        """(published, failed) for one claimed batch."""
        # The batch's own SQL belongs to no order's trace; each publish joins its order's.
        with suppress_instrumentation():
            return await self._publish_batch()

    async def _publish_batch(self) -> tuple[int, int]:
        async with claim_batch(self._pool, self._batch_size) as claim:
            if not claim.rows:
                return 0, 0
            outcomes = await asyncio.gather(*(self._publish(row) for row in claim.rows), return_exceptions=True)
            confirmed = [row for row, outcome in zip(claim.rows, outcomes, strict=True) if outcome is None]
            await claim.mark_published(confirmed)
            # The broker's verdict on these very messages, not its outage: put off, in the end parked.
            refused: list[Refused] = [
                (row, str(outcome))
                for row, outcome in zip(claim.rows, outcomes, strict=True)
                if isinstance(outcome, Unroutable | Nacked)
            ]
            parked = await claim.mark_refused(refused, self._retry)
        if parked:
            log.error(
                "outbox rows parked after too many refusals; `orders outbox unpark` tries them again",
                extra={"parked": parked, "error": refused[0][1]},
            )
        failures = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
        OUTBOX_PUBLISHED.inc(len(confirmed))
        for failure in failures:
            OUTBOX_PUBLISH_FAILURES.labels(type(failure).__name__).inc()
        if failures:
            log.warning(
                "outbox rows not confirmed; they stay in the outbox",
                extra={"failed": len(failures), "confirmed": len(confirmed), "error": str(failures[0])},
            )
        return len(confirmed), len(failures)

    async def _publish(self, row: OutboxRow) -> None:
        trace_context = {
            name: value for name, value in (("traceparent", row.traceparent), ("tracestate", row.tracestate)) if value
        }
        # Continue the trace of the request that wrote the row: its publish (a PRODUCER span)
        # is a child of that request. Extracted into a fresh context, which also leaves the
        # batch's suppression of instrumentation behind.
        token = context.attach(propagate.extract(trace_context, context=Context()))
        try:
            await self._publisher.publish(
                row.event_type,
                row.payload.encode(),
                message_id=str(row.event_id),
                content_type=CONTENT_TYPE,
                message_type=row.event_type,
                headers=trace_context,
            )
        finally:
            context.detach(token)


async def report_backlog(pool: Pool, stop: asyncio.Event, interval_seconds: float) -> None:
    while not stop.is_set():
        try:
            with suppress_instrumentation():
                current = await backlog(pool)
        except OUTBOX_UNAVAILABLE:
            pass  # The relay loop logs outages; the gauges keep their last value.
        else:
            OUTBOX_BACKLOG.set(current.rows)
            OUTBOX_OLDEST_AGE.set(current.oldest_age_seconds)
            OUTBOX_PARKED.set(current.parked)
        await first_of(stop, seconds=interval_seconds)


@asynccontextmanager
async def relay_tasks(app: web.Application) -> AsyncIterator[None]:
    settings = app[RELAY_SETTINGS]
    channel = await open_confirming_channel(app[AMQP])
    exchange = await declare_event_exchange(channel, settings.events_exchange)
    relay = Relay(
        app[DB_POOL],
        Publisher(exchange, confirm_timeout_seconds=settings.publish_confirm_timeout_seconds),
        batch_size=settings.relay_batch_size,
        poll_interval_seconds=settings.relay_poll_interval_seconds,
        linger_seconds=settings.relay_linger_seconds,
        retry=RetryPolicy(
            max_attempts=settings.relay_max_attempts,
            first_backoff_seconds=settings.relay_first_backoff_seconds,
            max_backoff_seconds=settings.relay_max_backoff_seconds,
        ),
    )
    stop = asyncio.Event()
    loops = {
        "relay": relay.run(stop),
        # Whatever was committed while nobody listened is caught up by a wake too.
        "outbox-listener": keep_listening(
            settings.database_url.get_secret_value(),
            NOTIFY_CHANNEL,
            on_notify=lambda _payload: relay.wake(),
            on_listening=relay.wake,
            stop=stop,
            retry_seconds=settings.relay_poll_interval_seconds,
        ),
        "outbox-metrics": report_backlog(app[DB_POOL], stop, settings.relay_metrics_interval_seconds),
    }
    tasks = [supervise(app, asyncio.create_task(loop, name=name)) for name, loop in loops.items()]
    log.info("relaying", extra={"exchange": settings.events_exchange, "batch_size": settings.relay_batch_size})
    try:
        yield
    finally:
        stop.set()
        _, unfinished = await asyncio.wait(tasks, timeout=settings.shutdown_timeout_seconds)
        for task in unfinished:
            # Rolled back: those rows stay unpublished and go out after the restart.
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await channel.close()


def create_relay_app(settings: RelaySettings) -> web.Application:
    app = create_base_app(settings)
    app[RELAY_SETTINGS] = settings
    app.cleanup_ctx.append(database(settings))
    app.cleanup_ctx.append(amqp_connection(AMQP, settings.amqp_url.get_secret_value(), connection_name="orders-relay"))
    app.cleanup_ctx.append(relay_tasks)
    return app
