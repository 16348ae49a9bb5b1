"""The orders HTTP API's request and response shapes."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

Status = Literal["accepted", "notified"]


class OrderLine(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    sku: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    quantity: int = Field(ge=1, le=10_000)
    unit_price_cents: int = Field(ge=0, le=100_000_000)


class PlaceOrder(BaseModel):
    """POST /orders. Strict: no unknown fields, no numbers in strings."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    customer_id: str = Field(min_length=1, max_length=128)
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    items: tuple[OrderLine, ...] = Field(min_length=1, max_length=100)

    @property
    def total_cents(self) -> int:
        return sum(line.quantity * line.unit_price_cents for line in self.items)

    def fingerprint(self) -> str:
        """Identifies the request's meaning, for reuse of an Idempotency-Key with another body."""
        return hashlib.sha256(self.model_dump_json().encode()).hexdigest()


class Order(BaseModel):
    id: UUID
    customer_id: str
    currency: str
    items: tuple[OrderLine, ...]
    total_cents: int
    status: Status
    created_at: datetime
    published_at: datetime | None
    notified_at: datetime | None
    # The trace the order's placement started (W3C trace id); None if it was not traced.
    trace_id: str | None = None


class OrderPage(BaseModel):
    items: list[Order]
    # Opaque; pass as ?after= for the next page. None on the last page.
    next_cursor: str | None
