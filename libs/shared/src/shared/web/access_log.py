"""One structured line per HTTP request; probes and scrapes only at DEBUG."""

from __future__ import annotations

import logging

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.typedefs import Handler
from opentelemetry import trace
from opentelemetry.trace import SpanContext

# Kubelet probes and Prometheus scrapes arrive every few seconds and tell nobody anything.
QUIET_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
# Set on a request refused past capacity (shared.web.admission): its line is at DEBUG.
REFUSED_KEY = web.RequestKey("refused", str)


# aiohttp writes the access log after the request's span has ended; this keeps its ids.
_SPAN_CONTEXT = web.RequestKey("span_context", SpanContext)


@web.middleware
async def remember_span_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    span_context = trace.get_current_span().get_span_context()
    if span_context.is_valid:
        request[_SPAN_CONTEXT] = span_context
    return await handler(request)


def _trace_fields(request: web.BaseRequest) -> dict[str, str]:
    span_context = request.get(_SPAN_CONTEXT) if isinstance(request, web.Request) else None
    if span_context is None:
        return {}
    return {
        "trace_id": trace.format_trace_id(span_context.trace_id),
        "span_id": trace.format_span_id(span_context.span_id),
    }


def route_template(request: web.BaseRequest) -> str:
    """The route as declared ("/orders/{id}"): bounded, unlike the raw path."""
    match_info = getattr(request, "match_info", None)
    resource = match_info.route.resource if match_info is not None else None
    return resource.canonical if resource is not None else "unmatched"


class JsonAccessLogger(AbstractAccessLogger):
    """Every request at INFO, but probes and scrapes: the edge's record of what it answered."""

    def level(self, request: web.BaseRequest, response: web.StreamResponse) -> int:
        if request.path in QUIET_PATHS or (isinstance(request, web.Request) and REFUSED_KEY in request):
            return logging.DEBUG
        return logging.INFO

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        level = self.level(request, response)
        if not self.logger.isEnabledFor(level):
            return
        self.logger.log(
            level,
            "%s %s %s",
            request.method,
            request.path,
            response.status,
            extra={
                "http_method": request.method,
                # The path only: a query string may carry identifiers or tokens.
                "http_path": request.path,
                "http_route": route_template(request),
                "http_status": response.status,
                "duration_ms": round(time * 1000, 3),
                "request_id": request.headers.get("X-Request-Id"),
                **_trace_fields(request),
            },
        )

    @property
    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.DEBUG) or self.logger.isEnabledFor(logging.INFO)


class InternalAccessLogger(JsonAccessLogger):
    """For an API only the gateway calls: the gateway's own line already records each request
    (same request id, same trace), so a line here says nothing more unless this process failed
    to answer. At DEBUG the lines come back (``…_LOG_LEVEL=DEBUG``)."""

    def level(self, request: web.BaseRequest, response: web.StreamResponse) -> int:
        return logging.INFO if response.status >= 500 else logging.DEBUG
