"""Run a batch handler over a queue: manual acks, bounded retries, dead-lettering, graceful stop.

Deliveries are handled in batches of whatever has arrived, up to ``max_batch`` (the
prefetch), waiting at most ``linger_seconds`` after the first for more to come: one database
transaction and one ack frame then serve many messages, at a cost in latency bounded by the
linger. Every delivery ends in exactly one way:
- the handler committed its effects (outcome None): acked, with the rest of its batch;
- it failed alone (an exception as its outcome) or its whole batch failed for a reason that
  is not an outage: it is tried again on its own, the others are not held back —
  :class:`Unprocessable` (poison) is dead-lettered at once, anything else is tried
  ``max_attempts`` times with backoff, then dead-lettered;
- the whole batch failed on a dependency's outage (``RetryPolicy.transient``): the batch
  waits it out, spending no attempts;
- the consumer is stopping: returned to the queue for another consumer.
Dead-lettered copies carry the reason in ``x-dead-letter-reason``. If even that publish
fails, the delivery is rejected and the broker's own dead-lettering keeps it. A process
killed mid-batch acked nothing of it, so the broker redelivers: handlers must be idempotent.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import time
from collections.abc import Sequence
from typing import Any

from aio_pika import DeliveryMode, Message
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractIncomingMessage, AbstractQueue
from aio_pika.exceptions import AMQPError, ChannelInvalidStateError

from shared.messaging.acks import Acknowledgements
from shared.messaging.delivery import Batch, BatchHandler, Delivery, Handler, Outcomes
from shared.messaging.metrics import (
    BATCH_SIZE,
    MESSAGE_FAILURES,
    MESSAGE_HANDLING_SECONDS,
    MESSAGE_RETRIES,
    MESSAGES_HANDLED,
)
from shared.messaging.retry import RetryPolicy

log = logging.getLogger(__name__)

REASON_HEADER = "x-dead-letter-reason"
ATTEMPTS_HEADER = "x-dead-letter-attempts"
ORIGINAL_QUEUE_HEADER = "x-original-queue"
ORIGINAL_EXCHANGE_HEADER = "x-original-exchange"
ORIGINAL_ROUTING_KEY_HEADER = "x-original-routing-key"

_MAX_REASON_LENGTH = 500


class Unprocessable(Exception):
    """A message that can never succeed (poison): no retries."""


class _Outcome(enum.Enum):
    DONE = "acked"
    DEAD = "dead_lettered"
    REQUEUE = "requeued"


def each(handler: Handler) -> BatchHandler:
    """A handler of one message, as a batch handler: the batch's messages are handled
    concurrently, each in its own trace, each failing alone."""

    async def handle(batch: Batch) -> Outcomes:
        async def one(delivery: Delivery) -> None:
            with delivery.traced():
                await handler(delivery.message)

        results = await asyncio.gather(*(one(delivery) for delivery in batch.deliveries), return_exceptions=True)
        outcomes: list[Exception | None] = []
        for result in results:
            if result is not None and not isinstance(result, Exception):
                raise result  # cancelled: not an outcome of the message
            outcomes.append(result)
        return outcomes

    return handle


class Consumer:
    def __init__(
        self,
        *,
        channel: AbstractChannel,
        queue: AbstractQueue,
        dead_letter_exchange: AbstractExchange,
        handler: BatchHandler,
        retry: RetryPolicy,
        max_batch: int,
        linger_seconds: float = 0.0,
        confirm_timeout_seconds: float = 5.0,
    ) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        if linger_seconds < 0:
            raise ValueError("linger_seconds must not be negative")
        self._channel = channel
        self._queue = queue
        self._dead_letter_exchange = dead_letter_exchange
        self._handler = handler
        self._retry = retry
        self._max_batch = max_batch
        self._linger = linger_seconds
        # Set by an arrival that brings the waiting deliveries to what the lingering batch lacks.
        self._batch_filled = asyncio.Event()
        self._lacking = max_batch
        self._confirm_timeout = confirm_timeout_seconds
        self._acks = Acknowledgements()
        self._arrived: asyncio.Queue[Delivery] = asyncio.Queue()
        self._batches: asyncio.Task[None] | None = None
        # Deliveries on their own retry path, each a task: the batches go on meanwhile.
        self._alone: set[asyncio.Task[Any]] = set()
        self._stopping = asyncio.Event()
        self._consumer_tag: str | None = None
        # Series exist from the start, so dashboards show zero rather than nothing.
        for outcome in _Outcome:
            MESSAGES_HANDLED.labels(queue.name, outcome.value)
        MESSAGE_RETRIES.labels(queue.name)
        MESSAGE_FAILURES.labels(queue.name)
        MESSAGE_HANDLING_SECONDS.labels(queue.name)
        BATCH_SIZE.labels(queue.name)

    @property
    def stopping(self) -> bool:
        """True once stop() has cancelled the subscription: no new deliveries arrive."""
        return self._consumer_tag is None and self._stopping.is_set()

    async def start(self) -> asyncio.Task[None]:
        """Subscribe; the task that handles the deliveries, until stop() (for supervision)."""
        self._batches = asyncio.create_task(self._run_batches(), name=f"consume {self._queue.name}")
        self._consumer_tag = await self._queue.consume(self._arrive)
        return self._batches

    async def stop(self, timeout_seconds: float) -> None:
        """Take no new deliveries, let the batch and the retries under way finish, then close the
        channel. Whatever is unfinished at the deadline is left unacked when the channel closes,
        so the broker puts it back on the queue; only then is it cancelled."""
        self._stopping.set()
        if self._consumer_tag is not None and not self._channel.is_closed:
            await self._queue.cancel(self._consumer_tag)
        self._consumer_tag = None
        running = {task for task in (self._batches, *self._alone) if task is not None}
        pending: set[asyncio.Task[Any]] = set()
        if running:
            _, pending = await asyncio.wait(running, timeout=timeout_seconds)
        if pending:
            log.warning(
                "in-flight messages did not finish in time; returning them to the queue",
                extra={"queue": self._queue.name, "count": len(pending)},
            )
        await self._channel.close()
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    async def _arrive(self, message: AbstractIncomingMessage) -> None:
        self._acks.delivered(message)
        self._arrived.put_nowait(Delivery(message))
        if self._arrived.qsize() >= self._lacking:
            self._batch_filled.set()

    async def _run_batches(self) -> None:
        while (first := await self._next_arrival()) is not None:
            deliveries = [first]
            self._take_arrived(deliveries)
            if len(deliveries) < self._max_batch and self._linger:
                await self._linger_for_more(self._max_batch - len(deliveries))
                self._take_arrived(deliveries)
            try:
                await self._settle_batch(deliveries)
            except (AMQPError, OSError):
                # The channel or connection broke while settling; it is restored by itself,
                # and the broker redelivers whatever was not acked. The loop must live on.
                log.warning("could not settle a batch; the broker redelivers it", exc_info=True)
            except Exception:
                # A bug, not the message's fault: give back what is unsettled rather than hold
                # it (and its prefetch slot) until the channel closes, and go on consuming.
                log.exception("batch could not be settled; returning it to the queue")
                await asyncio.gather(
                    *(self._requeue(delivery) for delivery in deliveries if not delivery.message.processed),
                    return_exceptions=True,
                )

    def _take_arrived(self, deliveries: list[Delivery]) -> None:
        while len(deliveries) < self._max_batch and not self._arrived.empty():
            deliveries.append(self._arrived.get_nowait())

    async def _linger_for_more(self, lacking: int) -> None:
        """Until ``lacking`` more deliveries have arrived, the linger is over, or the consumer stops."""
        self._lacking = lacking
        self._batch_filled.clear()
        if self._arrived.qsize() < lacking:
            filled = asyncio.ensure_future(self._batch_filled.wait())
            stop = asyncio.ensure_future(self._stopping.wait())
            await asyncio.wait({filled, stop}, timeout=self._linger, return_when=asyncio.FIRST_COMPLETED)
            filled.cancel()
            stop.cancel()
        self._lacking = self._max_batch

    async def _next_arrival(self) -> Delivery | None:
        """The next delivery; once stopping, only what has arrived already (taken on, it is
        finished within the stop's timeout), then None."""
        if not self._arrived.empty():
            return self._arrived.get_nowait()
        if self._stopping.is_set():
            return None
        arrival = asyncio.ensure_future(self._arrived.get())
        stop = asyncio.ensure_future(self._stopping.wait())
        await asyncio.wait({arrival, stop}, return_when=asyncio.FIRST_COMPLETED)
        stop.cancel()
        if arrival.done():
            return arrival.result()
        arrival.cancel()
        return None

    async def _settle_batch(self, deliveries: list[Delivery]) -> None:
        for delivery in deliveries:
            delivery.begin(self._queue.name)
        BATCH_SIZE.labels(self._queue.name).observe(len(deliveries))
        outcomes = await self._handle_batch(deliveries)
        if outcomes is None:
            await asyncio.gather(*(self._requeue(delivery) for delivery in deliveries))
            return
        done = [delivery for delivery, outcome in zip(deliveries, outcomes, strict=True) if outcome is None]
        await self._acks.ack([delivery.message for delivery in done])
        for delivery in done:
            self._finish(delivery, _Outcome.DONE)
        for delivery, outcome in zip(deliveries, outcomes, strict=True):
            if outcome is not None:
                task = asyncio.create_task(self._on_its_own(delivery, outcome))
                self._alone.add(task)
                task.add_done_callback(self._alone.discard)

    async def _handle_batch(self, deliveries: list[Delivery]) -> Sequence[Exception | _TryAlone | None] | None:
        """Each delivery's outcome; None when the consumer stopped while an outage lasted."""
        failures = 0
        while True:
            try:
                outcomes = await self._handler(Batch(deliveries))
            except Exception as exc:  # noqa: BLE001 - whatever a handler raises is its batch's outcome
                if not isinstance(exc, self._retry.transient):
                    if len(deliveries) == 1:
                        return [exc]
                    # Which message broke it is unknown: each is tried alone, none blamed yet.
                    log.warning(
                        "batch failed; each of its messages is tried alone",
                        extra={"queue": self._queue.name, "count": len(deliveries), "error": _describe(exc)},
                    )
                    return [_TRY_ALONE] * len(deliveries)
                failures += 1
                MESSAGE_RETRIES.labels(self._queue.name).inc(len(deliveries))
                backoff = self._retry.backoff_seconds(failures, outage=True)
                log.warning(
                    "batch waits out an outage",
                    extra={"queue": self._queue.name, "count": len(deliveries), "error": _describe(exc)},
                )
                if await self._stop_requested_within(backoff):
                    return None
                continue
            if len(outcomes) != len(deliveries):
                raise RuntimeError(f"the handler gave {len(outcomes)} outcomes for {len(deliveries)} messages")
            return outcomes

    async def _on_its_own(self, delivery: Delivery, failure: Exception | _TryAlone) -> None:
        """One delivery's own path after it failed in a batch (or its batch did)."""
        attempt = 1  # counts the message's own failures; a dependency's outage does not
        failures = 0
        outcome: Exception | _TryAlone | None = failure
        while True:
            if isinstance(outcome, _TryAlone):
                outcome = await self._handle_alone(delivery)
            if outcome is None:
                await self._acks.ack([delivery.message])
                self._finish(delivery, _Outcome.DONE)
                return
            if isinstance(outcome, Unprocessable):
                await self._dead_letter(delivery, f"unprocessable: {outcome}", attempt)
                return
            MESSAGE_FAILURES.labels(self._queue.name).inc()
            failures += 1
            transient = isinstance(outcome, self._retry.transient)
            if not transient and attempt >= self._retry.max_attempts:
                log.error(
                    "handler failed; dead-lettering",
                    exc_info=outcome,
                    extra={"queue": self._queue.name, "message_id": delivery.message.message_id, "attempts": attempt},
                )
                await self._dead_letter(delivery, f"failed {attempt} times, last: {_describe(outcome)}", attempt)
                return
            MESSAGE_RETRIES.labels(self._queue.name).inc()
            backoff = self._retry.backoff_seconds(failures, outage=transient)
            log.warning(
                "handler failed; retrying",
                extra={
                    "queue": self._queue.name,
                    "message_id": delivery.message.message_id,
                    "attempt": attempt,
                    "transient": transient,
                    "backoff_seconds": round(backoff, 3),
                    "error": _describe(outcome),
                },
            )
            if await self._stop_requested_within(backoff):
                await self._requeue(delivery)
                return
            if not transient:
                attempt += 1
            outcome = _TRY_ALONE

    async def _handle_alone(self, delivery: Delivery) -> Exception | None:
        try:
            [outcome] = await self._handler(Batch([delivery]))
        except Exception as exc:  # noqa: BLE001 - whatever a handler raises is its message's outcome
            return exc
        return outcome

    async def _stop_requested_within(self, seconds: float) -> bool:
        try:
            async with asyncio.timeout(seconds):
                await self._stopping.wait()
        except TimeoutError:
            return False
        return True

    def _finish(self, delivery: Delivery, outcome: _Outcome) -> None:
        MESSAGES_HANDLED.labels(self._queue.name, outcome.value).inc()
        MESSAGE_HANDLING_SECONDS.labels(self._queue.name).observe(time.perf_counter() - delivery.received_at)
        delivery.end()

    async def _requeue(self, delivery: Delivery) -> None:
        self._acks.settled_elsewhere(delivery.message)
        # A closed channel has put it back by itself.
        with contextlib.suppress(ChannelInvalidStateError):
            await delivery.message.nack(requeue=True)
        self._finish(delivery, _Outcome.REQUEUE)

    async def _dead_letter(self, delivery: Delivery, reason: str, attempts: int) -> None:
        message = delivery.message
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
        try:
            await self._dead_letter_exchange.publish(copy, message.routing_key or "", timeout=self._confirm_timeout)
        except (AMQPError, TimeoutError, OSError):
            # The broker's own dead-lettering (the queue's x-dead-letter-exchange) keeps it.
            log.exception("dead-letter publish failed; rejecting to the broker's dead-letter exchange")
            self._acks.settled_elsewhere(message)
            # A closed channel has put it back: it is redelivered, and fails again.
            with contextlib.suppress(ChannelInvalidStateError):
                await message.reject(requeue=False)
        else:
            await self._acks.ack([message])
            log.warning(
                "message dead-lettered",
                extra={
                    "queue": self._queue.name,
                    "message_id": message.message_id,
                    "reason": reason[:_MAX_REASON_LENGTH],
                },
            )
        self._finish(delivery, _Outcome.DEAD)


class _TryAlone:
    """The outcome of a delivery whose batch failed as a whole: not yet its own failure."""


_TRY_ALONE = _TryAlone()


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"
