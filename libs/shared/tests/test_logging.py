from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from shared.logging import configure_logging
from shared.web import InternalAccessLogger, JsonAccessLogger


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    buffer = io.StringIO()
    configure_logging(service="orders", release="r-123", level="INFO", stream=buffer)
    yield buffer
    root.handlers[:] = saved_handlers
    root.setLevel(saved_level)
    logging.captureWarnings(False)


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_each_record_is_one_json_object_with_service_and_release(stream: io.StringIO) -> None:
    logging.getLogger("orders.web").info("order %s accepted", "o-1", extra={"order_id": "o-1"})

    [record] = lines(stream)
    assert record["message"] == "order o-1 accepted"
    assert record["level"] == "info"
    assert record["logger"] == "orders.web"
    assert record["service"] == "orders"
    assert record["release"] == "r-123"
    assert record["order_id"] == "o-1"
    assert str(record["timestamp"]).endswith("+00:00")
    assert "trace_id" not in record


def test_active_span_links_the_line_to_its_trace(stream: io.StringIO) -> None:
    context = SpanContext(
        trace_id=0x4BF92F3577B34DA6A3CE929D0E0E4736,
        span_id=0x00F067AA0BA902B7,
        is_remote=False,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
    )
    with trace.use_span(NonRecordingSpan(context)):
        logging.getLogger("orders.web").warning("inside a span")

    [record] = lines(stream)
    assert record["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert record["span_id"] == "00f067aa0ba902b7"


def test_a_traceback_stays_inside_one_line(stream: io.StringIO) -> None:
    try:
        int("boom")
    except ValueError:
        logging.getLogger("orders.web").exception("failed")

    output = stream.getvalue()
    assert output.count("\n") == 1
    [record] = lines(stream)
    assert "ValueError: invalid literal for int() with base 10: 'boom'" in str(record["exc_info"])


def test_levels_below_the_configured_one_are_dropped(stream: io.StringIO) -> None:
    logging.getLogger("orders.web").debug("noise")

    assert stream.getvalue() == ""


@pytest.mark.parametrize(
    ("logger_class", "path", "status", "level"),
    [
        (JsonAccessLogger, "/api/v1/orders", 201, logging.INFO),
        (JsonAccessLogger, "/readyz", 200, logging.DEBUG),
        (InternalAccessLogger, "/orders", 201, logging.DEBUG),
        (InternalAccessLogger, "/orders", 422, logging.DEBUG),
        (InternalAccessLogger, "/orders", 503, logging.INFO),
    ],
)
def test_the_edge_logs_every_request_an_internal_api_only_its_failures(
    logger_class: type[JsonAccessLogger], path: str, status: int, level: int
) -> None:
    access = logger_class(logging.getLogger("aiohttp.access"), "")

    assert access.level(make_mocked_request("POST", path), web.Response(status=status)) == level
