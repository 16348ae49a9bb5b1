"""One order is one trace: gateway -> orders -> outbox -> relay -> RabbitMQ -> notifier -> SMTP
-> NotificationSent -> orders worker, exported over OTLP by real processes."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import aiohttp
import pytest

from harness.api import ORDER_BODY, ORDERS_PATH
from harness.procfile import process_types
from harness.stack import Stack
from shared.testing import eventually
from shared.testing.otlp import OtlpReceiver, ReceivedSpan

if TYPE_CHECKING:
    pass

# (service, span kind, part of the name) of every hop the trace must contain.
EXPECTED = [
    ("gateway", "SERVER", "POST /api/v1/orders"),
    ("gateway", "CLIENT", ""),
    ("orders", "SERVER", "/orders"),
    ("orders", "CLIENT", "INSERT orders outbox"),
    ("orders", "PRODUCER", ""),
    ("notifier", "CONSUMER", "process"),
    ("notifier", "CLIENT", "smtp send"),
    ("notifier", "CLIENT", "INSERT notifications"),
    ("notifier", "PRODUCER", ""),
    ("orders", "CONSUMER", "process"),
    ("orders", "CLIENT", "INSERT inbox UPDATE orders"),
]


@pytest.fixture
async def receiver() -> AsyncIterator[OtlpReceiver]:
    otlp = OtlpReceiver()
    await otlp.start()
    yield otlp
    await otlp.stop()


@pytest.fixture
def extra_env(receiver: OtlpReceiver) -> dict[str, str]:
    return {
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_TRACES_SAMPLER": "parentbased_always_on",
        # Export within a fraction of a second rather than the default five.
        "OTEL_BSP_SCHEDULE_DELAY": "100",
    }


def child_of(
    spans: list[ReceivedSpan], parent: ReceivedSpan, *, kind: str, service: str, name: str = ""
) -> ReceivedSpan:
    found = [
        span
        for span in spans
        if span.parent_span_id == parent.span_id and span.kind == kind and span.service == service and name in span.name
    ]
    assert found, f"no {kind} span {name!r} of {service} under {parent.service}/{parent.name}: {describe(spans)}"
    return found[0]


def describe(spans: list[ReceivedSpan]) -> list[str]:
    return [f"{span.service}:{span.kind}:{span.name} {span.parent_span_id}->{span.span_id}" for span in spans]


async def test_one_order_is_one_trace_across_every_process_and_its_logs(stack: Stack, receiver: OtlpReceiver) -> None:
    callers_trace_id, callers_span_id = secrets.token_hex(16), secrets.token_hex(8)
    token = await stack.token("alice")
    headers = {
        "Authorization": f"Bearer {token}",
        "Idempotency-Key": str(uuid.uuid4()),
        # The caller's own trace: the gateway links it, and starts the order's trace itself.
        "traceparent": f"00-{callers_trace_id}-{callers_span_id}-01",
    }
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{stack.gateway_url}{ORDERS_PATH}", json=ORDER_BODY, headers=headers) as response:
            assert response.status == 201
            order: dict[str, Any] = await response.json()

        async def notified() -> bool:
            url = f"{stack.gateway_url}{ORDERS_PATH}/{order['id']}"
            async with http.get(url, headers={"Authorization": f"Bearer {token}"}) as answer:
                return bool((await answer.json())["status"] == "notified")

        await eventually(notified, timeout_seconds=30, description="order notified")

    def gateway_span() -> ReceivedSpan | None:
        linked = [span for span in receiver.spans if (callers_trace_id, callers_span_id) in span.links]
        return linked[0] if linked else None

    gateway = await eventually(
        gateway_span, timeout_seconds=30, description="the gateway's span, linked to the caller's"
    )
    # A trace of Dozen's own, rooted at the gateway: the caller's traceparent is linked, not continued.
    assert (gateway.service, gateway.kind, gateway.parent_span_id) == ("gateway", "SERVER", "")
    assert receiver.trace(callers_trace_id) == []
    trace_id = gateway.trace_id

    def every_process_exported() -> bool:
        # Each process exports on its own schedule: wait for all of them, in any order.
        seen = {(span.service, span.kind, span.name) for span in receiver.trace(trace_id)}
        return all(
            any(kind == k and service == s and name in n for s, k, n in seen) for service, kind, name in EXPECTED
        )

    await eventually(every_process_exported, timeout_seconds=30, description="every process's spans exported")
    spans = receiver.trace(trace_id)

    assert gateway.name == "POST /api/v1/orders"
    to_orders = child_of(spans, gateway, kind="CLIENT", service="gateway")
    orders_web = child_of(spans, to_orders, kind="SERVER", service="orders", name="/orders")
    # One span per database transaction (or batch of them), not one per statement.
    child_of(spans, orders_web, kind="CLIENT", service="orders", name="INSERT orders outbox")
    # The relay's publish continues the request that wrote the outbox row.
    publish = child_of(spans, orders_web, kind="PRODUCER", service="orders")
    consume = child_of(spans, publish, kind="CONSUMER", service="notifier", name="process")
    child_of(spans, consume, kind="CLIENT", service="notifier", name="smtp send")
    child_of(spans, consume, kind="CLIENT", service="notifier", name="INSERT notifications")
    notification_sent = child_of(spans, consume, kind="PRODUCER", service="notifier")
    worker = child_of(spans, notification_sent, kind="CONSUMER", service="orders", name="process")
    child_of(spans, worker, kind="CLIENT", service="orders", name="INSERT inbox UPDATE orders")
    known = {span.span_id for span in spans} | {""}
    assert all(span.parent_span_id in known for span in spans), "a span's parent is outside the trace"
    # Every span in the trace is one of the hops above: none that says nothing.
    assert len(spans) == len(EXPECTED), describe(spans)

    # Every process type the order passes through logs a line of it; the relay publishes
    # batches and logs none per order (its span is linked to each order's trace instead).
    for name in (name for name in process_types() if name != "orders-relay"):
        records = [record for record in stack.processes[name].records if record.get("trace_id") == trace_id]
        assert records, f"no log line of {name} carries the order's trace id"
    # The latency histogram's exemplar points at this very trace (OpenMetrics exposition).
    async with (
        aiohttp.ClientSession() as http,
        http.get(
            f"http://127.0.0.1:{stack.management_ports['orders-worker']}/metrics",
            headers={"Accept": "application/openmetrics-text; version=1.0.0"},
        ) as metrics,
    ):
        exposition = await metrics.text()
    assert f'# {{trace_id="{trace_id}"}}' in exposition
    orders_lines = {
        record["message"] for record in stack.processes["orders-web"].records if record.get("trace_id") == trace_id
    }
    assert "order accepted" in orders_lines
