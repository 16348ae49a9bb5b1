"""The settings of a queue consumer, named alike in every service that has one.

Outside shared.messaging on purpose: every process of a service reads its settings classes,
and importing shared.messaging (aio-pika, aiohttp) would cost orders web and the one-offs
half a second of start-up for nothing.

Mixed into a service's settings like ``shared.db.PostgresSettings``, so they read its prefix:
the notifier's worker reads NOTIFIER_QUEUE and NOTIFIER_PREFETCH_COUNT, the orders worker
ORDERS_QUEUE and ORDERS_PREFETCH_COUNT. A service states only the defaults that are its own
(its queue's name; how soon its handler's failures are worth another try).
"""

from __future__ import annotations

from typing import Self

from pydantic import BaseModel, Field, model_validator

from shared.config import AmqpUrl, backoff_in_order


class QueueSettings(BaseModel):
    """What names a consumer's queue, and with it the dead-letter pair: the worker and ``dlq``."""

    amqp_url: AmqpUrl
    # Each service gives its own default (``<service>.<event consumed>``).
    queue: str = Field(min_length=1)


class ConsumerSettings(QueueSettings):
    """How the worker consumes its queue."""

    # Deliveries in flight, and the most one batch (one transaction, one ack frame) carries.
    prefetch_count: int = Field(100, ge=1, le=1000)
    # How long a batch waits after its first delivery for more: a little latency for a lot
    # less work per message under load (measured by `make bench`).
    batch_linger_seconds: float = Field(0.025, ge=0, le=1)
    max_attempts: int = Field(5, ge=1, le=100)
    first_backoff_seconds: float = Field(0.5, gt=0)
    max_backoff_seconds: float = Field(30.0, gt=0)

    @model_validator(mode="after")
    def _backoff_in_order(self) -> Self:
        return backoff_in_order(self, "first_backoff_seconds", "max_backoff_seconds")
