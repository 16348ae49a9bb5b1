"""Events to and from AMQP message bodies, refusing what no contract describes."""

from __future__ import annotations

import json
from typing import Any

from pydantic import ValidationError

from shared.events.contracts import ALL_CONTRACTS
from shared.events.envelope import Envelope, EventData

_BY_TYPE: dict[str, type[EventData]] = {contract.event_type: contract for contract in ALL_CONTRACTS}


class EventError(ValueError):
    """The body is not an event this codebase understands (poison for a consumer)."""


class UnknownEventType(EventError):
    pass


class InvalidEvent(EventError):
    pass


def encode(envelope: Envelope[Any]) -> bytes:
    # CloudEvents: an absent optional attribute is left out, not sent as null.
    return envelope.model_dump_json(exclude_none=True).encode()


def decode(body: bytes, *, expect: type[EventData] | None = None) -> Envelope[EventData]:
    """Parse and validate an envelope and its data against the contract its ``type`` names."""
    try:
        raw = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidEvent(f"body is not JSON: {exc}") from exc
    if not isinstance(raw, dict):
        raise InvalidEvent("body is not a JSON object")
    event_type = raw.get("type")
    contract = _BY_TYPE.get(event_type) if isinstance(event_type, str) else None
    if contract is None:
        raise UnknownEventType(f"no contract for event type {event_type!r}")
    if expect is not None and contract is not expect:
        raise UnknownEventType(f"expected {expect.event_type!r}, got {event_type!r}")
    try:
        return Envelope[contract].model_validate(raw)  # type: ignore[valid-type]
    except ValidationError as exc:
        fields = ", ".join(".".join(str(part) for part in error["loc"]) for error in exc.errors())
        raise InvalidEvent(f"{event_type} does not match its contract at: {fields}") from exc
