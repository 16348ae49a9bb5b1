"""What each orders process type reads from the environment (all prefixed ORDERS_)."""

from __future__ import annotations

from pydantic import Field, SecretStr, model_validator

from shared import queue_settings
from shared.config import AmqpUrl, Port, ServiceSettings, backoff_in_order
from shared.db import PostgresSettings, RetentionSettings
from shared.web.management import ApiPorts


class OrdersSettings(ServiceSettings, env_prefix="ORDERS_"):
    service_name = "orders"


class DatabaseSettings(OrdersSettings, PostgresSettings):
    """Every process type, and the one-offs migrate and outbox redrive: all of them use the database."""


class PruneSettings(DatabaseSettings, RetentionSettings):
    """`orders prune`: published outbox rows and inbox rows past the retention go."""


class QueueSettings(OrdersSettings, queue_settings.QueueSettings):
    """`orders dlq …`, and the worker."""

    queue: str = Field("orders.notification-sent", min_length=1)


class WebSettings(DatabaseSettings, ApiPorts):
    # What every API request must carry (``Authorization: Bearer …``): the gateway's
    # GATEWAY_ORDERS_TOKEN, set to the same value by every deploy (orders.callers).
    api_token: SecretStr = Field(min_length=32)
    max_body_bytes: int = Field(64 * 1024, ge=1024, le=1024 * 1024)
    # Requests worked on at once; the next is refused at once (503, Retry-After) instead of
    # queueing behind them. A few times the pool: enough to keep every connection busy.
    max_in_flight: int = Field(64, ge=1, le=10_000)
    # Live order-update streams (the board's) open at once, and how long each lasts before the
    # client opens another: apart from the in-flight bound, since each holds its place for minutes.
    max_update_streams: int = Field(256, ge=1, le=10_000)
    update_stream_max_seconds: float = Field(300.0, gt=0, le=3600)
    # How soon the listener for order updates connects again after its connection failed.
    update_listen_retry_seconds: float = Field(1.0, gt=0, le=60)


class MessagingSettings(DatabaseSettings):
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
    # A row the broker refuses (unroutable, nacked) waits this long, doubling up to the most,
    # so that it holds up nothing behind it; after this many refusals it is parked for an
    # operator (`orders outbox unpark`). The defaults give a consumer that is not yet bound
    # about a quarter of an hour. The broker's outage counts for nothing: rows just wait.
    relay_max_attempts: int = Field(20, ge=1, le=1000)
    relay_first_backoff_seconds: float = Field(1.0, gt=0)
    relay_max_backoff_seconds: float = Field(60.0, gt=0)

    @model_validator(mode="after")
    def _backoff_in_order(self) -> RelaySettings:
        return backoff_in_order(self, "relay_first_backoff_seconds", "relay_max_backoff_seconds")


class WorkerSettings(MessagingSettings, QueueSettings, queue_settings.ConsumerSettings):
    notifications_exchange: str = Field("notifier.events", min_length=1)
    # Its handler needs only this service's own database, back long before a mail server.
    first_backoff_seconds: float = Field(0.2, gt=0)
    max_backoff_seconds: float = Field(10.0, gt=0)
