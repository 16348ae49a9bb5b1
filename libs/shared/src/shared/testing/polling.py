"""Wait for a condition with a deadline: the only way tests synchronise with the system."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def eventually(
    probe: Callable[[], Awaitable[T | None]],
    *,
    timeout_seconds: float = 10.0,
    interval_seconds: float = 0.02,
    description: str = "condition",
) -> T:
    """Await ``probe`` until it returns something truthy; return that, or fail at the deadline."""
    deadline = time.monotonic() + timeout_seconds
    last: T | None = None
    while time.monotonic() < deadline:
        last = await probe()
        if last:
            return last
        await asyncio.sleep(interval_seconds)
    raise AssertionError(f"{description} not met within {timeout_seconds:g} s (last value: {last!r})")
