"""Tracing as the OTEL_* variables say, in a real process: protocols, exporters, resource."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from shared.telemetry import configuration_problems
from shared.testing import ServiceProcess, eventually
from shared.testing.otlp import OtlpGrpcReceiver, OtlpReceiver, ReceivedSpan

TRACED = str(Path(__file__).with_name("traced_process.py"))


async def run_traced(env: dict[str, str]) -> ServiceProcess:
    process = ServiceProcess([sys.executable, TRACED], env=env)
    await process.start()
    await process.wait(timeout_seconds=30)
    return process


def hello(spans: list[ReceivedSpan]) -> ReceivedSpan | None:
    return next((span for span in spans if span.name == "hello"), None)


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
async def test_spans_go_out_over_the_protocol_asked_for(protocol: str) -> None:
    receiver = OtlpGrpcReceiver() if protocol == "grpc" else OtlpReceiver()
    await receiver.start()
    try:
        process = await run_traced(
            {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint, "OTEL_EXPORTER_OTLP_PROTOCOL": protocol}
        )
        assert process.returncode == 0, process.output()
        span = await eventually(lambda: hello(receiver.spans), description=f"the span over {protocol}")
    finally:
        await receiver.stop()
    assert span.service == "traced"
    assert span.resource["service.version"] == "r-1"


async def test_resource_attributes_and_service_name_from_the_environment_win() -> None:
    receiver = OtlpReceiver()
    await receiver.start()
    try:
        process = await run_traced(
            {
                "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
                "OTEL_RESOURCE_ATTRIBUTES": "service.version=from-the-operator,deployment.environment.name=ci",
                "OTEL_SERVICE_NAME": "renamed",
            }
        )
        assert process.returncode == 0, process.output()
        span = await eventually(lambda: hello(receiver.spans), description="the span")
    finally:
        await receiver.stop()
    assert span.service == "renamed"
    assert span.resource["service.version"] == "from-the-operator"
    assert span.resource["deployment.environment.name"] == "ci"


async def test_exporter_none_sends_nothing_and_runs() -> None:
    receiver = OtlpReceiver()
    await receiver.start()
    try:
        process = await run_traced({"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint, "OTEL_TRACES_EXPORTER": "none"})
    finally:
        await receiver.stop()
    assert process.returncode == 0, process.output()
    assert receiver.spans == []


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
        ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "carrier-pigeon"),
        ("OTEL_TRACES_EXPORTER", "console"),
    ],
)
async def test_a_value_that_cannot_be_honoured_exits_78_naming_it(variable: str, value: str) -> None:
    process = await run_traced({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1", variable: value})

    assert process.returncode == 78
    assert process.stderr_lines[0] == f"config error: {variable}: {value!r} cannot be honoured here " + (
        "(one of: otlp, none)" if variable == "OTEL_TRACES_EXPORTER" else "(one of: http/protobuf, grpc)"
    )


def test_nothing_is_checked_when_the_sdk_is_disabled() -> None:
    assert configuration_problems({"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}) == []
    assert configuration_problems({"OTEL_EXPORTER_OTLP_PROTOCOL": " GRPC "}) == []


async def test_a_service_given_an_unusable_protocol_exits_78_with_its_other_problems() -> None:
    sample = str(Path(__file__).with_name("sample_service.py"))
    process = ServiceProcess([sys.executable, sample], env={"OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"})
    await process.start()

    assert await process.wait(timeout_seconds=10) == 78
    assert process.stderr_lines[:2] == [
        "config error: SAMPLE_PORT: required but not set",
        "config error: OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json' cannot be honoured here (one of: http/protobuf, grpc)",
    ]
