"""Event contracts: round trips, refusal of what no contract describes, and compatibility."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from uuid import UUID, uuid4

import pytest

from shared.events import (
    ALL_CONTRACTS,
    InvalidEvent,
    NotificationSentV1,
    OrderCreatedV1,
    OrderLineV1,
    UnknownEventType,
    decode,
    encode,
    new_event,
)
from shared.events.schemas import render

CONTRACTS = Path(__file__).with_name("contracts")
NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def order_created() -> OrderCreatedV1:
    return OrderCreatedV1(
        order_id=uuid4(),
        customer_id="alice",
        currency="EUR",
        items=(OrderLineV1(sku="BOOK-1", quantity=2, unit_price_cents=1250),),
        total_cents=2500,
        created_at=NOW,
    )


def sample(event_type: str) -> dict[str, object]:
    loaded: dict[str, object] = json.loads((CONTRACTS / "samples" / f"{event_type}.json").read_text())
    return loaded


def test_round_trip_keeps_every_attribute() -> None:
    data = order_created()
    event = new_event(
        data,
        source="/dozen/orders",
        subject=str(data.order_id),
        traceparent="00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    )

    decoded = decode(encode(event))

    assert decoded == event
    assert isinstance(decoded.data, OrderCreatedV1)
    assert decoded.type == "dozen.order.created.v1"
    assert decoded.specversion == "1.0"


def test_absent_optional_attributes_are_left_out_not_null() -> None:
    wire = json.loads(encode(new_event(order_created(), source="/dozen/orders")))

    assert "traceparent" not in wire
    assert "subject" not in wire


def test_event_id_can_be_made_deterministic_for_deduplication() -> None:
    fixed = UUID("0b6f3f64-4f5e-4a4b-9d8e-2f3c7c1d9a10")

    event = new_event(order_created(), source="/dozen/orders", event_id=fixed, time=NOW)

    assert event.id == fixed
    assert event.time == NOW


@pytest.mark.parametrize("contract", ALL_CONTRACTS, ids=lambda contract: contract.event_type)
def test_published_v1_messages_still_decode(contract: type[OrderCreatedV1 | NotificationSentV1]) -> None:
    decoded = decode(json.dumps(sample(contract.event_type)).encode())

    assert isinstance(decoded.data, contract)


def test_fields_added_by_a_newer_producer_are_ignored() -> None:
    wire = sample("dozen.order.created.v1")
    wire["partitionkey"] = "alice"
    wire["data"] = {**wire["data"], "loyalty_points": 12}  # type: ignore[dict-item]

    decoded = decode(json.dumps(wire).encode())

    assert isinstance(decoded.data, OrderCreatedV1)
    assert decoded.data.customer_id == "alice"


@pytest.mark.parametrize("contract", ALL_CONTRACTS, ids=lambda contract: contract.event_type)
def test_contract_schemas_match_what_was_published(contract: type[OrderCreatedV1 | NotificationSentV1]) -> None:
    committed = (CONTRACTS / f"{contract.event_type}.schema.json").read_text()

    assert render(contract) == committed, (
        f"{contract.event_type} changed. Additive optional fields: run `make contracts` and commit. "
        "Anything else breaks consumers: add a new version instead."
    )


def test_unknown_event_type_is_refused() -> None:
    wire = sample("dozen.order.created.v1") | {"type": "dozen.order.created.v9"}

    with pytest.raises(UnknownEventType, match="v9"):
        decode(json.dumps(wire).encode())


def test_event_of_another_type_than_expected_is_refused() -> None:
    with pytest.raises(UnknownEventType, match=re.escape("expected 'dozen.notification.sent.v1'")):
        decode(json.dumps(sample("dozen.order.created.v1")).encode(), expect=NotificationSentV1)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"\xff\xfe", "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b'{"type": "dozen.order.created.v1"}', "does not match its contract at: id, source, time, data"),
    ],
)
def test_malformed_events_are_refused_with_the_reason(body: bytes, message: str) -> None:
    with pytest.raises(InvalidEvent, match=message):
        decode(body)


def test_contract_violations_in_data_name_the_field() -> None:
    wire = sample("dozen.order.created.v1")
    wire["data"] = {**wire["data"], "currency": "euro"}  # type: ignore[dict-item]

    with pytest.raises(InvalidEvent, match=re.escape("data.currency")):
        decode(json.dumps(wire).encode())


def test_traceparent_must_be_w3c() -> None:
    wire = sample("dozen.order.created.v1") | {"traceparent": "not-a-trace"}

    with pytest.raises(InvalidEvent, match="traceparent"):
        decode(json.dumps(wire).encode())
