"""Readiness: may this process take traffic now? Checks the dependencies it registered."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from opentelemetry.instrumentation.utils import suppress_instrumentation

Check = Callable[[], Awaitable[object]]


class Readiness:
    def __init__(self, timeout_seconds: float) -> None:
        self._timeout = timeout_seconds
        self._checks: dict[str, Check] = {}
        self._shutting_down = False

    def add_check(self, name: str, check: Check) -> None:
        if name in self._checks:
            raise ValueError(f"readiness check {name!r} registered twice")
        self._checks[name] = check

    def begin_shutdown(self) -> None:
        self._shutting_down = True

    @property
    def shutting_down(self) -> bool:
        return self._shutting_down

    async def evaluate(self) -> tuple[bool, dict[str, str]]:
        """(ready, check name -> "ok" or why not). Checks run concurrently, each bounded."""
        names = list(self._checks)
        outcomes = await asyncio.gather(*(self._run(self._checks[name]) for name in names))
        results = dict(zip(names, outcomes, strict=True))
        if self._shutting_down:
            results["shutdown"] = "in progress"
        return all(outcome == "ok" for outcome in outcomes) and not self._shutting_down, results

    async def _run(self, check: Check) -> str:
        try:
            # Probes every few seconds would otherwise each start a trace of their own.
            with suppress_instrumentation():
                async with asyncio.timeout(self._timeout):
                    await check()
        except TimeoutError:
            return f"timed out after {self._timeout:g} s"
        except Exception as exc:  # noqa: BLE001 - any failure means not ready
            # The exception's type only: its text may name internal hosts or credentials.
            return f"failed: {type(exc).__name__}"
        return "ok"
