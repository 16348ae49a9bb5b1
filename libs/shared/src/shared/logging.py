"""Logs as an event stream (factor XI): one JSON object per line on stdout, nothing else.

Where the lines go is the environment's business (compose, the kubelet, a collector);
the process never opens a log file. Each line names the service and release, and the
active trace and span, so any line links to its trace.
"""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from typing import IO, Any

from opentelemetry import trace
from pythonjsonlogger.orjson import OrjsonFormatter


class _ServiceContext(logging.Filter):
    """Stamps every record with who wrote it and the trace it belongs to."""

    def __init__(self, service: str, release: str) -> None:
        super().__init__()
        self._service = service
        self._release = release

    def filter(self, record: logging.LogRecord) -> bool:
        record.service = self._service
        record.release = self._release
        span_context = trace.get_current_span().get_span_context()
        if span_context.is_valid:
            record.trace_id = trace.format_trace_id(span_context.trace_id)
            record.span_id = trace.format_span_id(span_context.span_id)
        return True


class _Formatter(OrjsonFormatter):
    # orjson: a log line is written for every request and message, and the stdlib's encoder
    # cost several times as much per line (measured with py-spy under `make bench`).

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        # RFC 3339 in UTC with milliseconds: sortable, and parsed by every log store.
        return datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds")

    def process_log_record(self, log_data: dict[str, Any]) -> dict[str, Any]:
        log_data["level"] = str(log_data.get("level", "")).lower()
        return log_data


def json_handler(*, service: str, release: str, stream: IO[str] | None = None) -> logging.Handler:
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(
        _Formatter(
            ["asctime", "levelname", "name", "message"],
            rename_fields={"asctime": "timestamp", "levelname": "level", "name": "logger"},
        )
    )
    handler.addFilter(_ServiceContext(service, release))
    return handler


def configure_logging(*, service: str, release: str, level: str = "INFO", stream: IO[str] | None = None) -> None:
    """Route every logger, the stdlib's warnings included, to one JSON handler on stdout."""
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(json_handler(service=service, release=release, stream=stream))
    root.setLevel(level)
    # What no line shows costs nothing to gather (the logging HOWTO's "Optimization"): the
    # caller's file and line, the thread and the process. Every order writes several lines.
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    logging.captureWarnings(True)
    # aio-pika and aiormq log every reconnect attempt at INFO with full tracebacks.
    for chatty in ("aiormq", "aio_pika"):
        logging.getLogger(chatty).setLevel(max(logging.getLevelName(level), logging.WARNING))
