"""Wait for a condition with a deadline: the only way tests synchronise with the system."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, overload

T = TypeVar("T")


@overload
async def eventually(
    probe: Callable[[], Awaitable[T | None]],
    *,
    timeout_seconds: float = ...,
    interval_seconds: float = ...,
    description: str = ...,
) -> T: ...


@overload
async def eventually(
    probe: Callable[[], T | None],
    *,
    timeout_seconds: float = ...,
    interval_seconds: float = ...,
    description: str = ...,
) -> T: ...


async def eventually(
    probe: Callable[[], Any],
    *,
    timeout_seconds: float = 10.0,
    interval_seconds: float = 0.02,
    description: str = "condition",
) -> Any:
    """Call ``probe`` (sync or async) until it gives something truthy; return that, or fail at the deadline."""
    deadline = time.monotonic() + timeout_seconds
    last = None
    while time.monotonic() < deadline:
        outcome = probe()
        last = await outcome if inspect.isawaitable(outcome) else outcome
        if last:
            return last
        await asyncio.sleep(interval_seconds)
    raise AssertionError(f"{description} not met within {timeout_seconds:g} s (last value: {last!r})")
