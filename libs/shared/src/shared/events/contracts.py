"""The event contracts between Dozen's services, defined once.

Changing a published version is a breaking change for every consumer: add fields only
as optional, and anything else as a new model with a new ``event_type`` (…``.v2``),
published alongside the old one until no consumer needs it. The JSON schemas of these
models are committed under ``libs/shared/tests/contracts`` and compared in tests.
"""

from __future__ import annotations

from typing import ClassVar, Literal
from uuid import UUID

from pydantic import AwareDatetime, Field

from shared.events.envelope import EventData


class OrderLineV1(EventData):
    sku: str = Field(min_length=1, max_length=64)
    quantity: int = Field(ge=1)
    unit_price_cents: int = Field(ge=0)


class OrderCreatedV1(EventData):
    event_type: ClassVar[str] = "dozen.order.created.v1"

    order_id: UUID
    customer_id: str = Field(min_length=1, max_length=128)
    currency: str = Field(pattern=r"^[A-Z]{3}$")  # ISO 4217
    items: tuple[OrderLineV1, ...] = Field(min_length=1)
    total_cents: int = Field(ge=0)
    created_at: AwareDatetime


class NotificationSentV1(EventData):
    event_type: ClassVar[str] = "dozen.notification.sent.v1"

    notification_id: UUID
    order_id: UUID
    customer_id: str = Field(min_length=1, max_length=128)
    channel: Literal["email"]
    # The SMTP Message-ID, derived from the OrderCreated event id (a resend keeps it).
    message_id: str = Field(min_length=1)
    sent_at: AwareDatetime


ALL_CONTRACTS: tuple[type[EventData], ...] = (OrderCreatedV1, NotificationSentV1)
