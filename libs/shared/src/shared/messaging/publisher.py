"""Publish persistent messages and return only once the broker has taken responsibility.

The channel runs in confirm mode with mandatory publishing, so every publish ends in
exactly one of: confirmed (returns), nacked, unroutable, or not confirmed in time
(each raises :class:`PublishFailed`). Nothing vanishes silently.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import datetime
from typing import cast

from aio_pika import DeliveryMode, Message
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractRobustConnection, HeadersType
from aio_pika.exceptions import AMQPError, DeliveryError, PublishError

from shared.messaging.metrics import PUBLISH_CONFIRM_SECONDS, PUBLISH_FAILURES


class PublishFailed(Exception):
    """The broker did not confirm the message; the caller still owns it."""


class Unroutable(PublishFailed):
    """No queue is bound for this routing key: the message would have been dropped."""


class Nacked(PublishFailed):
    """The broker refused the message (Basic.Nack or Basic.Reject)."""


class ConfirmTimeout(PublishFailed):
    """No confirm in time; the broker may or may not have the message (publish again: consumers dedupe)."""


class BrokerUnavailable(PublishFailed):
    """The channel or connection was closed or not open yet (the broker gone, a reconnect
    under way): the message was not sent, or not confirmed."""


async def open_confirming_channel(connection: AbstractRobustConnection) -> AbstractChannel:
    return await connection.channel(publisher_confirms=True, on_return_raises=True)


class Publisher:
    def __init__(self, exchange: AbstractExchange, *, confirm_timeout_seconds: float) -> None:
        self._exchange = exchange
        self._timeout = confirm_timeout_seconds
        # Series exist from the start, so dashboards show zero rather than nothing.
        PUBLISH_CONFIRM_SECONDS.labels(exchange.name)
        for reason in ("unroutable", "nacked", "timeout", "unavailable"):
            PUBLISH_FAILURES.labels(exchange.name, reason)

    async def publish(
        self,
        routing_key: str,
        body: bytes,
        *,
        message_id: str,
        content_type: str = "application/json",
        message_type: str | None = None,
        headers: Mapping[str, object] | None = None,
        timestamp: datetime | None = None,
    ) -> None:
        message = Message(
            body,
            delivery_mode=DeliveryMode.PERSISTENT,
            message_id=message_id,
            content_type=content_type,
            type=message_type,
            headers=cast(HeadersType, dict(headers or {})),
            timestamp=timestamp,
        )
        started = time.perf_counter()
        try:
            await self._exchange.publish(message, routing_key, mandatory=True, timeout=self._timeout)
        except PublishError as exc:
            PUBLISH_FAILURES.labels(self._exchange.name, "unroutable").inc()
            raise Unroutable(f"no queue bound to {self._exchange.name!r} for {routing_key!r}") from exc
        except DeliveryError as exc:
            PUBLISH_FAILURES.labels(self._exchange.name, "nacked").inc()
            raise Nacked(f"broker refused message {message_id} to {self._exchange.name!r}") from exc
        except TimeoutError as exc:
            PUBLISH_FAILURES.labels(self._exchange.name, "timeout").inc()
            raise ConfirmTimeout(f"no confirm for message {message_id} within {self._timeout:g} s") from exc
        except (AMQPError, ConnectionError, RuntimeError) as exc:
            # aio-pika says "not open" or "closed" with RuntimeError (aiormq's
            # ChannelInvalidStateError among them) while a robust connection reconnects.
            PUBLISH_FAILURES.labels(self._exchange.name, "unavailable").inc()
            raise BrokerUnavailable(f"message {message_id} not published: {type(exc).__name__}: {exc}") from exc
        PUBLISH_CONFIRM_SECONDS.labels(self._exchange.name).observe(time.perf_counter() - started)
