"""Tracing from the standard OTEL_* variables, through the OpenTelemetry instrumentation packages.

What the OTEL_* variables say is honoured as the specification defines it (sampler,
batch processor, resource attributes, OTLP endpoint and protocol, OTEL_SDK_DISABLED).
Two choices of Dozen's own:
- Spans are exported over OTLP only when an endpoint is configured: without a collector
  (tests, `make dev`) tracing still runs, so logs carry trace ids and context still
  propagates across HTTP and RabbitMQ, but nothing is sent anywhere.
- Probe and scrape requests (/healthz, /readyz, /metrics) are not traced unless
  OTEL_PYTHON_AIOHTTP_SERVER_EXCLUDED_URLS says otherwise.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager

from opentelemetry import trace
from opentelemetry.instrumentation.aio_pika import AioPikaInstrumentor
from opentelemetry.instrumentation.aiohttp_client import AioHttpClientInstrumentor
from opentelemetry.instrumentation.aiohttp_server import AioHttpServerInstrumentor
from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
from opentelemetry.sdk.resources import SERVICE_NAME, SERVICE_VERSION, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

log = logging.getLogger(__name__)

_ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
_INSTRUMENTORS = (AioHttpServerInstrumentor, AioHttpClientInstrumentor, AsyncPGInstrumentor, AioPikaInstrumentor)
_UNTRACED_PATHS = "/healthz,/readyz,/metrics"


def tracing_disabled() -> bool:
    return os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true"


def _exporter_wanted() -> bool:
    choice = os.environ.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower()
    return choice == "otlp" and any(os.environ.get(name) for name in _ENDPOINT_VARIABLES)


@contextmanager
def tracing(*, service: str, release: str) -> Iterator[None]:
    """Trace for as long as the block runs; flush what is buffered when it ends (SIGTERM included)."""
    if tracing_disabled():
        log.info("tracing disabled by OTEL_SDK_DISABLED")
        yield
        return
    # OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES, when set, win over these defaults.
    defaults = {SERVICE_NAME: os.environ.get("OTEL_SERVICE_NAME") or service, SERVICE_VERSION: release}
    provider = TracerProvider(resource=Resource.create(defaults))
    if _exporter_wanted():
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter  # noqa: PLC0415

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
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
