"""What each orders process type reads from the environment (all prefixed ORDERS_)."""

from __future__ import annotations

from pydantic import Field

from shared.config import AmqpUrl, Port, ServiceSettings
from shared.db import PostgresSettings


class OrdersSettings(ServiceSettings, PostgresSettings, env_prefix="ORDERS_"):
    """Read by every process type, the one-off migrate included: all of them use the database."""

    service_name = "orders"


class WebSettings(OrdersSettings):
    port: Port
    max_body_bytes: int = Field(64 * 1024, ge=1024, le=1024 * 1024)
    # Requests worked on at once; the next is refused at once (503, Retry-After) instead of
    # queueing behind them. A few times the pool: enough to keep every connection busy.
    max_in_flight: int = Field(64, ge=1, le=10_000)


class MessagingSettings(OrdersSettings):
    """Common to the processes that talk to RabbitMQ; they serve only a management port."""

    amqp_url: AmqpUrl
    port: Port
    events_exchange: str = Field("orders.events", min_length=1)
    publish_confirm_timeout_seconds: float = Field(5.0, gt=0)


class RelaySettings(MessagingSettings):
    relay_batch_size: int = Field(100, ge=1, le=10_000)
    # LISTEN/NOTIFY wakes the relay at once; this is only the fallback when a notification is lost.
    relay_poll_interval_seconds: float = Field(1.0, gt=0)
    # How long the relay waits, once woken, for more commits to carry in the same batch.
    relay_linger_seconds: float = Field(0.025, ge=0, le=1)
    relay_metrics_interval_seconds: float = Field(1.0, gt=0)


class WorkerSettings(MessagingSettings):
    notifications_exchange: str = Field("notifier.events", min_length=1)
    notifications_queue: str = Field("orders.notification-sent", min_length=1)
    # Deliveries in flight, and the most one batch (one statement, one ack frame) carries.
    worker_prefetch_count: int = Field(100, ge=1, le=1000)
    # How long a batch waits after its first delivery for more.
    worker_batch_linger_seconds: float = Field(0.025, ge=0, le=1)
    worker_max_attempts: int = Field(5, ge=1, le=100)
    worker_first_backoff_seconds: float = Field(0.2, gt=0)
    worker_max_backoff_seconds: float = Field(10.0, gt=0)
