"""What every process does first and last: logs to stdout, tracing set up, and flushed at exit."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from shared.config import ServiceSettings
from shared.logging import configure_logging
from shared.telemetry import tracing


@contextmanager
def running(settings: ServiceSettings) -> Iterator[None]:
    """``with running(settings): run(...)`` in a service's main()."""
    configure_logging(service=settings.service_name, release=settings.release_id, level=settings.log_level)
    with tracing(service=settings.service_name, release=settings.release_id):
        yield
