"""Versioned event contracts in CloudEvents envelopes, and their wire codec."""

from shared.events.codec import EventError, InvalidEvent, UnknownEventType, decode, encode
from shared.events.contracts import ALL_CONTRACTS, NotificationSentV1, OrderCreatedV1, OrderLineV1
from shared.events.envelope import CONTENT_TYPE, Envelope, EventData, new_event

__all__ = [
    "ALL_CONTRACTS",
    "CONTENT_TYPE",
    "Envelope",
    "EventData",
    "EventError",
    "InvalidEvent",
    "NotificationSentV1",
    "OrderCreatedV1",
    "OrderLineV1",
    "UnknownEventType",
    "decode",
    "encode",
    "new_event",
]
