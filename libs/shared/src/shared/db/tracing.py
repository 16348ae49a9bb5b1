"""One span per database transaction, not one per statement.

The asyncpg instrumentation traces each statement; a transaction of five statements (BEGIN,
a lock, a read, an insert, COMMIT) would give five spans per batch that say less together
than one does. Inside :func:`db_span` the statements are not traced one by one: the span
stands for the whole transaction, named after what it does.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from opentelemetry import trace
from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.trace import Link, SpanKind

_tracer = trace.get_tracer(__name__)


@contextmanager
def db_span(summary: str, *, batch_size: int | None = None, links: Sequence[Link] = ()) -> Iterator[None]:
    """``summary``: what the transaction does, as the semantic conventions' query summary
    ("INSERT notifications"); ``batch_size``: how many items one batch operation carries."""
    attributes: dict[str, str | int] = {"db.system.name": "postgresql", "db.query.summary": summary}
    if batch_size is not None:
        attributes["db.operation.batch.size"] = batch_size
    with (
        _tracer.start_as_current_span(summary, kind=SpanKind.CLIENT, attributes=attributes, links=links),
        suppress_instrumentation(),
    ):
        yield
