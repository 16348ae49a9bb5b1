"""Run a handler over a queue: manual ack, bounded retries, dead-lettering, graceful stop.

Every delivery ends in exactly one way:
- the handler returned: acked;
- it raised :class:`Unprocessable` (poison): dead-lettered at once;
- it kept raising: tried ``max_attempts`` times with backoff, then dead-lettered;
- the consumer is stopping: returned to the queue for another consumer.
Dead-lettered copies carry the reason in ``x-dead-letter-reason``. If even that publish
fails, the delivery is rejected and the broker's own dead-lettering keeps it. A process
killed mid-delivery never acked, so the broker redelivers: handlers must be idempotent.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aio_pika import DeliveryMode, Message
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractIncomingMessage, AbstractQueue

from shared.messaging.metrics import MESSAGE_FAILURES, MESSAGE_HANDLING_SECONDS, MESSAGE_RETRIES, MESSAGES_HANDLED
from shared.messaging.retry import RetryPolicy

log = logging.getLogger(__name__)

Handler = Callable[[AbstractIncomingMessage], Awaitable[None]]

REASON_HEADER = "x-dead-letter-reason"
ATTEMPTS_HEADER = "x-dead-letter-attempts"
ORIGINAL_QUEUE_HEADER = "x-original-queue"
ORIGINAL_EXCHANGE_HEADER = "x-original-exchange"
ORIGINAL_ROUTING_KEY_HEADER = "x-original-routing-key"

_MAX_REASON_LENGTH = 500


class Unprocessable(Exception):
    """Raised by a handler for a message that can never succeed (poison): no retries."""


class _Outcome(enum.Enum):
    DONE = "acked"
    DEAD = "dead_lettered"
    REQUEUE = "requeued"


class Consumer:
    def __init__(
        self,
        *,
        channel: AbstractChannel,
        queue: AbstractQueue,
        dead_letter_exchange: AbstractExchange,
        handler: Handler,
        retry: RetryPolicy,
        confirm_timeout_seconds: float = 5.0,
    ) -> None:
        self._channel = channel
        self._queue = queue
        self._dead_letter_exchange = dead_letter_exchange
        self._handler = handler
        self._retry = retry
        self._confirm_timeout = confirm_timeout_seconds
        self._in_flight: set[asyncio.Task[Any]] = set()
        self._stopping = asyncio.Event()
        self._consumer_tag: str | None = None
        # Series exist from the start, so dashboards show zero rather than nothing.
        for outcome in _Outcome:
            MESSAGES_HANDLED.labels(queue.name, outcome.value)
        MESSAGE_RETRIES.labels(queue.name)
        MESSAGE_FAILURES.labels(queue.name)
        MESSAGE_HANDLING_SECONDS.labels(queue.name)

    @property
    def stopping(self) -> bool:
        """True once stop() has cancelled the subscription: no new deliveries arrive."""
        return self._consumer_tag is None and self._stopping.is_set()

    async def start(self) -> None:
        self._consumer_tag = await self._queue.consume(self._on_message)

    async def stop(self, timeout_seconds: float) -> None:
        """Take no new deliveries, let in-flight ones finish, then close the channel.

        Whatever is still running at the deadline is left unacked when the channel
        closes, so the broker puts it back on the queue; only then is it cancelled.
        """
        self._stopping.set()
        if self._consumer_tag is not None and not self._channel.is_closed:
            await self._queue.cancel(self._consumer_tag)
        self._consumer_tag = None
        pending: set[asyncio.Task[Any]] = set()
        if self._in_flight:
            _, pending = await asyncio.wait(set(self._in_flight), timeout=timeout_seconds)
        if pending:
            log.warning(
                "in-flight messages did not finish in time; returning them to the queue",
                extra={"queue": self._queue.name, "count": len(pending)},
            )
        await self._channel.close()
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._in_flight.add(task)
            task.add_done_callback(self._in_flight.discard)
        started = time.perf_counter()
        # ignore_processed: the requeue path settles the delivery itself; an exception
        # escaping (the dead-letter publish failed) rejects it to the broker's DLX.
        async with message.process(requeue=False, ignore_processed=True):
            outcome, attempts, reason = await self._handle(message)
            if outcome is _Outcome.REQUEUE:
                await message.nack(requeue=True)
            elif outcome is _Outcome.DEAD:
                await self._dead_letter(message, reason, attempts)
        MESSAGES_HANDLED.labels(self._queue.name, outcome.value).inc()
        MESSAGE_HANDLING_SECONDS.labels(self._queue.name).observe(time.perf_counter() - started)

    async def _handle(self, message: AbstractIncomingMessage) -> tuple[_Outcome, int, str]:
        attempt = 1  # counts the message's own failures; a dependency's outage does not
        failures = 0
        while True:
            try:
                await self._handler(message)
            except Unprocessable as exc:
                return _Outcome.DEAD, attempt, f"unprocessable: {exc}"
            except Exception as exc:
                MESSAGE_FAILURES.labels(self._queue.name).inc()
                failures += 1
                failure = f"{type(exc).__name__}: {exc}"
                transient = isinstance(exc, self._retry.transient)
                if not transient and attempt >= self._retry.max_attempts:
                    log.error(
                        "handler failed; dead-lettering",
                        exc_info=True,
                        extra={"queue": self._queue.name, "message_id": message.message_id, "attempts": attempt},
                    )
                    return _Outcome.DEAD, attempt, f"failed {attempt} times, last: {failure}"
                MESSAGE_RETRIES.labels(self._queue.name).inc()
                backoff = self._retry.backoff_seconds(failures)
                log.warning(
                    "handler failed; retrying",
                    extra={
                        "queue": self._queue.name,
                        "message_id": message.message_id,
                        "attempt": attempt,
                        "transient": transient,
                        "backoff_seconds": round(backoff, 3),
                        "error": failure,
                    },
                )
                if await self._stop_requested_within(backoff):
                    return _Outcome.REQUEUE, attempt, "consumer stopping"
                if not transient:
                    attempt += 1
            else:
                return _Outcome.DONE, attempt, ""

    async def _stop_requested_within(self, seconds: float) -> bool:
        try:
            async with asyncio.timeout(seconds):
                await self._stopping.wait()
        except TimeoutError:
            return False
        return True

    async def _dead_letter(self, message: AbstractIncomingMessage, reason: str, attempts: int) -> None:
        headers = dict(message.headers)
        headers.update(
            {
                REASON_HEADER: reason[:_MAX_REASON_LENGTH],
                ATTEMPTS_HEADER: attempts,
                ORIGINAL_QUEUE_HEADER: self._queue.name,
                ORIGINAL_EXCHANGE_HEADER: message.exchange or "",
                ORIGINAL_ROUTING_KEY_HEADER: message.routing_key or "",
            }
        )
        copy = Message(
            message.body,
            headers=headers,
            content_type=message.content_type,
            content_encoding=message.content_encoding,
            message_id=message.message_id,
            correlation_id=message.correlation_id,
            type=message.type,
            timestamp=message.timestamp,
            delivery_mode=DeliveryMode.PERSISTENT,
        )
        await self._dead_letter_exchange.publish(copy, message.routing_key or "", timeout=self._confirm_timeout)
        log.warning(
            "message dead-lettered",
            extra={"queue": self._queue.name, "message_id": message.message_id, "reason": reason[:_MAX_REASON_LENGTH]},
        )
