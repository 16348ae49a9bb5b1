"""Tracing from the standard OTEL_* variables, through the OpenTelemetry instrumentation packages.

What the OTEL_* variables say is honoured as the specification defines it: sampler, batch
processor, resource attributes (which win over the service name and release given here),
OTLP endpoint and protocol (``http/protobuf`` or ``grpc``), ``OTEL_TRACES_EXPORTER``
(``otlp`` or ``none``), ``OTEL_SDK_DISABLED``. A value that cannot be honoured (the protocol
``http/json``, the exporter ``console``) is a configuration error: the process exits 78
naming it (``configuration_problems``, checked with the service's own settings).
Choices of Dozen's own:
- Spans are exported over OTLP only when an endpoint is configured: without a collector
  (tests, `make dev`) tracing still runs, so logs carry trace ids and context still
  propagates across HTTP and RabbitMQ, but nothing is sent anywhere.
- Probe and scrape requests (/healthz, /readyz, /metrics) are not traced unless
  OTEL_PYTHON_AIOHTTP_SERVER_EXCLUDED_URLS says otherwise.
- aio-pika is instrumented on the publishing side only: its consuming side wraps one callback
  per message, and Dozen's consumers work in batches, tracing each delivery themselves
  (``shared.messaging.delivery``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from opentelemetry import trace
from opentelemetry.instrumentation.aio_pika import AioPikaInstrumentor
from opentelemetry.instrumentation.aiohttp_client import AioHttpClientInstrumentor
from opentelemetry.instrumentation.aiohttp_server import AioHttpServerInstrumentor
from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
from opentelemetry.sdk.resources import SERVICE_NAME, SERVICE_VERSION, OTELResourceDetector, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter

log = logging.getLogger(__name__)

_ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
# The signal's own variable first, as the specification orders them.
_PROTOCOL_VARIABLES = ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL")
PROTOCOLS = ("http/protobuf", "grpc")
EXPORTERS = ("otlp", "none")
_UNTRACED_PATHS = "/healthz,/readyz,/metrics"
EXPORT_EVERY_MILLISECONDS = 500


class _AioPikaPublishing(AioPikaInstrumentor):
    """aio-pika's instrumentation, publishing side only: a PRODUCER span per publish and the
    trace context in the message's headers."""

    def _instrument(self, **kwargs: Any) -> None:
        provider = kwargs.get("tracer_provider")
        tracer = trace.get_tracer("opentelemetry.instrumentation.aio_pika", tracer_provider=provider)
        self._instrument_exchange(tracer)

    def _uninstrument(self, **kwargs: Any) -> None:
        self._uninstrument_exchange()  # type: ignore[no-untyped-call]


_INSTRUMENTORS = (AioHttpServerInstrumentor, AioHttpClientInstrumentor, AsyncPGInstrumentor, _AioPikaPublishing)


def tracing_disabled(environ: Mapping[str, str] = os.environ) -> bool:
    return environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true"


def _listed(value: str) -> list[str]:
    return [item.strip().lower() for item in value.split(",") if item.strip()]


def _exporters(environ: Mapping[str, str]) -> list[str]:
    return _listed(environ.get("OTEL_TRACES_EXPORTER", "")) or ["otlp"]


def _protocol(environ: Mapping[str, str]) -> tuple[str, str] | None:
    """(variable, protocol) of the protocol asked for, if any."""
    for variable in _PROTOCOL_VARIABLES:
        if value := environ.get(variable, "").strip().lower():
            return variable, value
    return None


def configuration_problems(environ: Mapping[str, str] = os.environ) -> list[str]:
    """Every OTEL_* value this process cannot honour, one line each (empty: all can be)."""
    if tracing_disabled(environ):
        return []
    problems = [
        f"OTEL_TRACES_EXPORTER: {exporter!r} cannot be honoured here (one of: {', '.join(EXPORTERS)})"
        for exporter in _exporters(environ)
        if exporter not in EXPORTERS
    ]
    for variable in _PROTOCOL_VARIABLES:
        value = environ.get(variable, "").strip().lower()
        if value and value not in PROTOCOLS:
            problems.append(f"{variable}: {value!r} cannot be honoured here (one of: {', '.join(PROTOCOLS)})")
    return problems


def _span_exporter(environ: Mapping[str, str]) -> SpanExporter | None:
    if "otlp" not in _exporters(environ) or not any(environ.get(name) for name in _ENDPOINT_VARIABLES):
        return None
    asked = _protocol(environ)
    # Imported only when used: each exporter brings its own transport (grpcio, requests).
    if asked is not None and asked[1] == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (  # noqa: PLC0415
            OTLPSpanExporter as GrpcSpanExporter,
        )

        return GrpcSpanExporter()
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter  # noqa: PLC0415

    return OTLPSpanExporter()


def resource(*, service: str, release: str) -> Resource:
    """The process's resource: OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES, when set, win
    over the service name and release given here (the operator knows better)."""
    return Resource.create({SERVICE_NAME: service, SERVICE_VERSION: release}).merge(OTELResourceDetector().detect())


@contextmanager
def tracing(*, service: str, release: str) -> Iterator[None]:
    """Trace for as long as the block runs; flush what is buffered when it ends (SIGTERM included)."""
    if tracing_disabled():
        log.info("tracing disabled by OTEL_SDK_DISABLED")
        yield
        return
    provider = TracerProvider(resource=resource(service=service, release=release))
    exporter = _span_exporter(os.environ)
    if exporter is not None:
        # Export twice a second, not every five: the spans waiting for export are objects
        # every garbage collection walks, and the export itself holds the interpreter longer
        # the bigger it is. Measured under `make bench`: cheaper, and no latency spikes.
        os.environ.setdefault("OTEL_BSP_SCHEDULE_DELAY", str(EXPORT_EVERY_MILLISECONDS))
        provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    os.environ.setdefault("OTEL_PYTHON_AIOHTTP_SERVER_EXCLUDED_URLS", _UNTRACED_PATHS)
    instrumentors = [instrumentor() for instrumentor in _INSTRUMENTORS]
    for instrumentor in instrumentors:
        instrumentor.instrument(tracer_provider=provider)
    try:
        yield
    finally:
        for instrumentor in instrumentors:
            instrumentor.uninstrument()
        provider.shutdown()
