"""Steady load through the gateway while a fault happens: what the gateway acknowledged is
what the system promised to keep."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import aiohttp

from harness.stack import Stack
from shared.testing import eventually

BODY = {"currency": "EUR", "items": [{"sku": "FAULT-1", "quantity": 1, "unit_price_cents": 500}]}
CUSTOMERS = 5


@dataclass
class Load:
    acknowledged: list[str] = field(default_factory=list)
    refused: dict[str, int] = field(default_factory=dict)
    fault_ended_at: float | None = None

    def fault_over(self) -> None:
        """Mark now as the end of the fault: recovery is timed from here."""
        self.fault_ended_at = time.monotonic()

    def refuse(self, reason: str) -> None:
        self.refused[reason] = self.refused.get(reason, 0) + 1

    async def reached(self, acknowledged: int, *, within: float = 60) -> None:
        """Return once ``acknowledged`` orders in all have been acknowledged; fail at the deadline."""
        await eventually(
            lambda: True if len(self.acknowledged) >= acknowledged else None,
            timeout_seconds=within,
            description=f"{acknowledged} orders acknowledged",
        )


@asynccontextmanager
async def steady_load(stack: Stack, *, per_second: float) -> AsyncIterator[Load]:
    """Place orders at ``per_second`` until the block ends; a failed request is only counted.

    Open loop: a slow or dead gateway does not slow the arrivals, as with real customers.
    """
    tokens = await asyncio.gather(*(stack.token(f"fault-{index}") for index in range(CUSTOMERS)))
    load = Load()
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=0)) as http:

        async def place(index: int) -> None:
            headers = {"Authorization": f"Bearer {tokens[index % CUSTOMERS]}", "Idempotency-Key": str(uuid.uuid4())}
            gateway = stack.gateway_for_next_request()
            if gateway is None:
                load.refuse("no gateway ready")
                return
            try:
                async with http.post(f"{gateway}/api/v1/orders", json=BODY, headers=headers) as answer:
                    if answer.status == 201:
                        load.acknowledged.append((await answer.json())["id"])
                    else:
                        load.refuse(f"HTTP {answer.status}")
            except (aiohttp.ClientError, TimeoutError) as error:
                load.refuse(type(error).__name__)

        in_flight: set[asyncio.Task[None]] = set()

        async def arrivals() -> None:
            began, index = time.monotonic(), 0
            while True:
                delay = began + index / per_second - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)  # the arrival schedule, not a wait for a condition
                task = asyncio.create_task(place(index))
                in_flight.add(task)
                task.add_done_callback(in_flight.discard)
                index += 1

        generator = asyncio.create_task(arrivals())
        try:
            yield load
        finally:
            generator.cancel()
            await asyncio.gather(generator, return_exceptions=True)
            # Requests already sent get their answers: an acknowledgement is never dropped here.
            await asyncio.gather(*in_flight)
