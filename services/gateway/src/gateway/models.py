"""The public API's shapes: what clients send and what they get back (see /api/openapi.json)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from shared.web import JsonInt

# The Idempotency-Key header: 1-255 printable ASCII characters, not starting or ending with
# a space (HTTP would strip it, and the retry would then carry a different key).
IDEMPOTENCY_KEY_PATTERN = r"^[!-~]([ -~]{0,253}[!-~])?$"


class OrderLine(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    sku: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    quantity: JsonInt = Field(ge=1, le=10_000)
    unit_price_cents: JsonInt = Field(ge=0, le=100_000_000)


class PlaceOrderRequest(BaseModel):
    """The customer is the token's subject, never a field a client can set."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    currency: str = Field(pattern=r"^[A-Z]{3}$", description="ISO 4217 code")
    items: list[OrderLine] = Field(min_length=1, max_length=100)


class Order(BaseModel):
    # What orders answers is narrowed to this: a field added upstream is not published by accident.
    model_config = ConfigDict(extra="ignore")

    id: UUID
    customer_id: str
    currency: str
    items: list[OrderLine]
    total_cents: int
    status: Literal["accepted", "notified"]
    created_at: datetime
    published_at: datetime | None
    notified_at: datetime | None
    trace_id: str | None = Field(
        None, description="The trace this order's placement started (W3C trace id); null if it was not traced."
    )


class OrderPage(BaseModel):
    model_config = ConfigDict(extra="ignore")

    items: list[Order]
    next_cursor: str | None = Field(description="Pass as `after` for the next page; null on the last page.")


class ProblemDetails(BaseModel):
    """RFC 9457 problem details, as every error is answered."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    errors: list[dict[str, str]] | None = Field(None, description="Each bad field and why, for 422.")
