"""The trace context a caller sends is not trusted at the public edge.

Honouring a caller's ``traceparent`` would let anyone graft Dozen's spans onto a trace of
their choosing, choose the trace id (and with a sampled flag, the sampling) of every request
they make. So the gateway starts a trace of its own for every request and *links* the
caller's span instead: the two stay connected in a trace viewer, and nothing inside Dozen's
trace is the caller's to decide. Towards orders, the context goes on as W3C trace context,
as everywhere else in Dozen.
"""

from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Handler
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.propagators.textmap import (
    CarrierT,
    Getter,
    Setter,
    TextMapPropagator,
    default_getter,
    default_setter,
)
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

_W3C = TraceContextTextMapPropagator()


class UntrustedCaller(TextMapPropagator):
    """W3C trace context, except that nothing a caller sends is extracted: every request to
    the gateway starts a trace of its own (``link_callers_span`` links the caller's span)."""

    def extract(
        self, carrier: CarrierT, context: Context | None = None, getter: Getter[CarrierT] = default_getter
    ) -> Context:
        return context if context is not None else Context()

    def inject(
        self, carrier: CarrierT, context: Context | None = None, setter: Setter[CarrierT] = default_setter
    ) -> None:
        _W3C.inject(carrier, context, setter)

    @property
    def fields(self) -> set[str]:
        return _W3C.fields


@web.middleware
async def link_callers_span(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Link the request's span, the root of a new trace, to the span its caller sent, if any."""
    callers = trace.get_current_span(_W3C.extract(request.headers)).get_span_context()
    if callers.is_valid:
        trace.get_current_span().add_link(callers, {"dozen.link": "caller"})
    return await handler(request)
