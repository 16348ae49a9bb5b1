"""OTLP endpoints for tests (HTTP and gRPC): processes export their spans here, tests read them back."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import grpc
from aiohttp import web
from aiohttp.test_utils import TestServer
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2_grpc import (
    TraceServiceServicer,
    add_TraceServiceServicer_to_server,
)

_KINDS = {0: "UNSPECIFIED", 1: "INTERNAL", 2: "SERVER", 3: "CLIENT", 4: "PRODUCER", 5: "CONSUMER"}


@dataclass(frozen=True)
class ReceivedSpan:
    service: str
    name: str
    kind: str
    trace_id: str
    span_id: str
    parent_span_id: str
    attributes: dict[str, object]
    # The resource the exporting process described itself with (service.version, ...).
    resource: dict[str, object]
    links: list[tuple[str, str]]  # (trace id, span id) of each linked span


def received_spans(export: ExportTraceServiceRequest) -> list[ReceivedSpan]:
    spans: list[ReceivedSpan] = []
    for resource_spans in export.resource_spans:
        resource = {item.key: _value(item.value) for item in resource_spans.resource.attributes}
        for scope_spans in resource_spans.scope_spans:
            spans.extend(
                ReceivedSpan(
                    service=str(resource.get("service.name", "")),
                    name=span.name,
                    kind=_KINDS.get(span.kind, str(span.kind)),
                    trace_id=span.trace_id.hex(),
                    span_id=span.span_id.hex(),
                    parent_span_id=span.parent_span_id.hex(),
                    attributes={item.key: _value(item.value) for item in span.attributes},
                    resource=resource,
                    links=[(link.trace_id.hex(), link.span_id.hex()) for link in span.links],
                )
                for span in scope_spans.spans
            )
    return spans


class _TraceEndpoint:
    """An OTLP/HTTP endpoint (POST /v1/traces) on a loopback port; subclasses handle exports."""

    def __init__(self) -> None:
        app = web.Application()
        app.router.add_post("/v1/traces", self._export)
        self._server = TestServer(app, host="127.0.0.1")

    @property
    def endpoint(self) -> str:
        return str(self._server.make_url("")).rstrip("/")

    async def start(self) -> None:
        await self._server.start_server()

    async def stop(self) -> None:
        await self._server.close()

    async def _export(self, request: web.Request) -> web.Response:
        raise NotImplementedError


class OtlpReceiver(_TraceEndpoint):
    """Accepts OTLP/HTTP protobuf trace exports and keeps every span, for tests to read back."""

    def __init__(self) -> None:
        super().__init__()
        self.spans: list[ReceivedSpan] = []

    def trace(self, trace_id: str) -> list[ReceivedSpan]:
        return [span for span in self.spans if span.trace_id == trace_id]

    async def _export(self, request: web.Request) -> web.Response:
        self.spans.extend(received_spans(ExportTraceServiceRequest.FromString(await request.read())))
        body = ExportTraceServiceResponse().SerializeToString()
        return web.Response(body=body, content_type="application/x-protobuf")


def _value(value: object) -> object:
    kind = value.WhichOneof("value")  # type: ignore[attr-defined]
    return getattr(value, kind) if kind else None


class OtlpSink(_TraceEndpoint):
    """Accepts OTLP/HTTP trace exports without decoding them, for benchmarks: a collector's
    work is not the app's cost, and decoding here would take CPU from the load generator."""

    def __init__(self) -> None:
        super().__init__()
        self.exports = 0
        self.bytes = 0

    async def _export(self, request: web.Request) -> web.Response:
        self.exports += 1
        self.bytes += len(await request.read())
        return web.Response(body=b"", content_type="application/x-protobuf")


class OtlpGrpcReceiver(TraceServiceServicer):
    """Accepts OTLP/gRPC trace exports on a loopback port and keeps every span."""

    def __init__(self) -> None:
        self.spans: list[ReceivedSpan] = []
        self._server = grpc.aio.server()
        add_TraceServiceServicer_to_server(self, self._server)  # type: ignore[no-untyped-call]
        self.port = self._server.add_insecure_port("127.0.0.1:0")

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        await self._server.start()

    async def stop(self) -> None:
        await self._server.stop(grace=None)

    async def Export(  # noqa: N802 - the gRPC service's method name
        self, request: ExportTraceServiceRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> ExportTraceServiceResponse:
        self.spans.extend(received_spans(request))
        return ExportTraceServiceResponse()
