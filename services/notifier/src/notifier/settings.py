"""What each notifier process reads from the environment (all prefixed NOTIFIER_)."""

from __future__ import annotations

from pydantic import Field, field_validator

from notifier.mail import Sender
from shared import queue_settings
from shared.config import Port, ServiceSettings, SmtpUrl
from shared.db import PostgresSettings, RetentionSettings


class NotifierSettings(ServiceSettings, env_prefix="NOTIFIER_"):
    service_name = "notifier"


class DatabaseSettings(NotifierSettings, PostgresSettings):
    """`notifier migrate`, and the worker."""


class PruneSettings(DatabaseSettings, RetentionSettings):
    """`notifier prune`: notifications past the retention go (a replayed event older than
    that would be emailed again)."""


class QueueSettings(NotifierSettings, queue_settings.QueueSettings):
    """`notifier dlq …`, and the worker."""

    queue: str = Field("notifier.order-created", min_length=1)


class WorkerSettings(DatabaseSettings, QueueSettings, queue_settings.ConsumerSettings):
    port: Port
    smtp_url: SmtpUrl
    smtp_timeout_seconds: float = Field(10.0, gt=0)
    # SMTP sessions kept open and reused; more than prefetch_count would never be used.
    smtp_connections: int = Field(4, ge=1, le=100)
    # One header line: no CR or LF may sneak another header into every email.
    mail_from: str = Field("Dozen <orders@dozen.test>", min_length=3, max_length=200, pattern=r"^[^\r\n]+$")
    # Dozen has no customer directory: a customer id becomes <id>@<this domain>.
    recipient_domain: str = Field("customers.dozen.test", pattern=r"^[a-z0-9.-]+$")
    orders_exchange: str = Field("orders.events", min_length=1)
    events_exchange: str = Field("notifier.events", min_length=1)
    publish_confirm_timeout_seconds: float = Field(5.0, gt=0)

    @field_validator("mail_from")
    @classmethod
    def _names_an_address(cls, value: str) -> str:
        Sender.parse(value)
        return value
