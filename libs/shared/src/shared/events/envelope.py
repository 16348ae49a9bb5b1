"""The CloudEvents 1.0 envelope every Dozen event travels in (structured JSON mode).

The W3C ``traceparent``/``tracestate`` ride along as CloudEvents distributed-tracing
extension attributes, so a consumer continues the producer's trace even when the
event sat in an outbox table before it was published.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import ClassVar, Generic, Literal, TypeVar
from uuid import UUID, uuid4

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

CONTENT_TYPE = "application/cloudevents+json"

_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$")


class EventData(BaseModel):
    """Base of every event payload. ``event_type`` names the contract and its major version."""

    # Tolerant reader: a consumer ignores fields a newer producer added (additive changes
    # stay within a version; anything else is a new version with a new event_type).
    model_config = ConfigDict(frozen=True, extra="ignore")

    event_type: ClassVar[str]


DataT = TypeVar("DataT", bound=EventData)


class Envelope(BaseModel, Generic[DataT]):
    model_config = ConfigDict(frozen=True, extra="ignore")

    specversion: Literal["1.0"] = "1.0"
    id: UUID
    source: str = Field(min_length=1)
    type: str = Field(min_length=1)
    time: AwareDatetime
    subject: str | None = None
    datacontenttype: Literal["application/json"] = "application/json"
    traceparent: str | None = None
    tracestate: str | None = None
    data: DataT

    @field_validator("traceparent")
    @classmethod
    def _w3c_traceparent(cls, value: str | None) -> str | None:
        if value is not None and not _TRACEPARENT.match(value):
            raise ValueError("traceparent must follow W3C Trace Context")
        return value


def new_event(
    data: DataT,
    *,
    source: str,
    subject: str | None = None,
    event_id: UUID | None = None,
    time: datetime | None = None,
    traceparent: str | None = None,
    tracestate: str | None = None,
) -> Envelope[DataT]:
    """Wrap ``data``; pass ``event_id`` to make the event's identity deterministic (dedupe)."""
    return Envelope[DataT](
        id=event_id or uuid4(),
        source=source,
        type=data.event_type,
        time=time or datetime.now(UTC),
        subject=subject,
        traceparent=traceparent,
        tracestate=tracestate,
        data=data,
    )
