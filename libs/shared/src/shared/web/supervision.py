"""The loops a process exists to run (a consumer, the relay, its LISTEN loop), supervised.

Such a loop runs as a task beside the app. Left alone, a loop that dies on an unexpected
exception would leave its process live and ready while nothing moves. Supervised, its end
is logged with the traceback, /healthz turns red (so an orchestrator that probes liveness
restarts it), and the process stops itself through the same graceful shutdown as SIGTERM,
exiting 1 (so one that does not probe, compose or honcho, sees it go). Crash-only: a fresh
process recovers from whatever state killed the loop; nothing tries to repair it in place.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiohttp import web

log = logging.getLogger(__name__)


class Lifecycle:
    """When the process should stop, and whether it stops because something in it died."""

    def __init__(self) -> None:
        self.stop_requested = asyncio.Event()
        self.failure: str | None = None

    def request_stop(self) -> None:
        self.stop_requested.set()

    def fail(self, reason: str) -> None:
        if self.failure is None:
            self.failure = reason
        self.stop_requested.set()


LIFECYCLE = web.AppKey("lifecycle", Lifecycle)


def supervise(app: web.Application, task: asyncio.Task[Any]) -> asyncio.Task[Any]:
    """Stop the process (exit 1) if ``task`` ends before a stop was asked for; ``task`` back."""
    lifecycle = app[LIFECYCLE]

    def ended(task: asyncio.Task[Any]) -> None:
        if lifecycle.stop_requested.is_set():
            return  # stopping anyway: the loop ended because it was told to
        failure = None if task.cancelled() else task.exception()
        log.error(
            "background loop ended; stopping the process",
            exc_info=failure,
            extra={"task": task.get_name(), "error": type(failure).__name__ if failure else "returned"},
        )
        lifecycle.fail(f"{task.get_name()} ended")

    task.add_done_callback(ended)
    return task
