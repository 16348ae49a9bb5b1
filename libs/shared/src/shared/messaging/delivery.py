"""One delivery as a batch handler sees it: the message, and the trace it continues.

Each delivery is processed under a CONSUMER span of its own, a child of the context its
producer put in the headers, open from the moment its batch starts until it is settled:
one order stays one trace though its message is handled together with others. Work done
once for the whole batch (a database transaction) runs in the first delivery's trace and
links to the others (``Batch.links``).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

from aio_pika.abc import AbstractIncomingMessage
from opentelemetry import context, propagate, trace
from opentelemetry.context import Context
from opentelemetry.trace import Link, Span, SpanKind

_tracer = trace.get_tracer(__name__)


@dataclass
class Delivery:
    message: AbstractIncomingMessage
    received_at: float = field(default_factory=time.perf_counter)
    _span: Span = field(default=trace.INVALID_SPAN, init=False)

    def begin(self, queue: str) -> None:
        """Open the delivery's CONSUMER span (when its batch starts, not when it arrived)."""
        headers = {
            key: value.decode(errors="replace") if isinstance(value, bytes) else value
            for key, value in self.message.headers.items()
            if isinstance(value, str | bytes)
        }
        self._span = _tracer.start_span(
            f"{queue} process",
            context=propagate.extract(headers, context=Context()),
            kind=SpanKind.CONSUMER,
            attributes={
                "messaging.system": "rabbitmq",
                "messaging.operation": "process",
                "messaging.destination.name": queue,
                "messaging.message.id": self.message.message_id or "",
            },
        )

    def end(self) -> None:
        self._span.end()

    @contextmanager
    def traced(self) -> Iterator[None]:
        """Work on this delivery alone, inside its own trace (an email, a follow-up event)."""
        token = context.attach(trace.set_span_in_context(self._span, Context()))
        try:
            yield
        finally:
            context.detach(token)

    @property
    def link(self) -> Link:
        return Link(self._span.get_span_context())


@dataclass(frozen=True)
class Batch:
    deliveries: Sequence[Delivery]

    @property
    def messages(self) -> list[AbstractIncomingMessage]:
        return [delivery.message for delivery in self.deliveries]

    @contextmanager
    def traced(self) -> Iterator[list[Link]]:
        """Work done once for the whole batch: in the first delivery's trace; yields links to
        every other delivery's span, for the span of that work to carry."""
        with self.deliveries[0].traced():
            yield [delivery.link for delivery in self.deliveries[1:]]


# A batch handler gives one outcome per delivery, in order: None when its effects are
# committed (it will be acked), or the exception that failed it alone (it takes the retry
# or dead-letter path, the others do not). Raising fails the whole batch.
Outcomes = Sequence[Exception | None]
BatchHandler = Callable[[Batch], Awaitable[Outcomes]]
Handler = Callable[[AbstractIncomingMessage], Awaitable[None]]
