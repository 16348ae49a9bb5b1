"""Steady load through the gateway while a fault happens: what the gateway acknowledged is
what the system promised to keep.

The client is a real client's: every order under an idempotency key of its own, and an
attempt whose outcome it cannot know (no answer, a connection reset, a 5xx other than a
refusal) tried again under the same key, a few times, as a real client would. Every key it
used is kept with its customer, so that the checker (``harness.invariants``) can reconcile
what exists with what was asked for, unknown outcomes included.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import aiohttp

from harness.api import ORDER_BODY, ORDERS_PATH
from harness.load import Answer, Run, running_open_loop
from harness.stack import Stack
from shared.testing import eventually

CUSTOMER_PREFIX = "fault-"
CUSTOMERS = tuple(f"{CUSTOMER_PREFIX}{index}" for index in range(5))
CLIENT_TIMEOUT_SECONDS = 10
# Answers that do not say whether the order was placed: the client asks again, same key.
# 503 and 429 are refusals at capacity (with Retry-After): counted, not retried here.
UNKNOWN_STATUSES = frozenset({500, 502, 504})
TRIES = 3


class NoGatewayReady(Exception):
    """Every gateway is out of rotation (restarting, say): the request was not sent."""


@dataclass
class Load:
    run: Run
    fault_ended_at: float | None = None
    # The same instant by the wall clock, to compare with the databases' timestamps.
    fault_ended_wall: float | None = None
    # Every idempotency key the client used, with the customer it used it for.
    issued: dict[str, str] = field(default_factory=dict)
    # Attempts tried again under the same key because their outcome was unknown.
    retried: int = 0
    _ids: list[str] = field(default_factory=list)
    _read: int = 0

    @property
    def customers(self) -> list[str]:
        return list(CUSTOMERS)

    @property
    def acknowledged(self) -> list[str]:
        """The ids of the orders acknowledged (201) so far, in the order the answers came."""
        # Attempts are only ever appended: read each answer once.
        for attempt in self.run.attempts[self._read :]:
            if attempt.status == 201:
                self._ids.append(str(json.loads(attempt.body)["id"]))
        self._read = len(self.run.attempts)
        return list(self._ids)

    @property
    def refused(self) -> dict[str, int]:
        """Every other outcome and how often: "HTTP 503", "TimeoutError", "NoGatewayReady", ..."""
        return {outcome: count for outcome, count in self.run.by_outcome().items() if outcome != "HTTP 201"}

    @property
    def why_refused(self) -> dict[str, int]:
        """The refusals by what they said: "HTTP 503: Too many requests are in progress; ..."."""
        reasons: dict[str, int] = {}
        for attempt in self.run.attempts:
            if attempt.status != 201:
                reason = f"{attempt.outcome}: {_detail(attempt.body)}" if attempt.status else attempt.outcome
                reasons[reason] = reasons.get(reason, 0) + 1
        return reasons

    def fault_over(self) -> None:
        """Mark now as the end of the fault: recovery is timed from here."""
        self.fault_ended_at = time.monotonic()
        self.fault_ended_wall = time.time()

    async def refused_another(self, count: int, *, within: float = 30) -> None:
        """Return once ``count`` more requests than now have been refused; fail at the deadline."""
        target = sum(self.refused.values()) + count
        await eventually(
            lambda: True if sum(self.refused.values()) >= target else None,
            timeout_seconds=within,
            description=f"{count} more requests refused",
        )

    async def answered(self, attempts: int, *, within: float = 60) -> None:
        """Return once ``attempts`` requests in all have had their outcome; fail at the deadline."""
        await eventually(
            lambda: True if len(self.run.attempts) >= attempts else None,
            timeout_seconds=within,
            description=f"{attempts} requests answered",
        )

    async def reached(self, acknowledged: int, *, within: float = 60) -> None:
        """Return once ``acknowledged`` orders in all have been acknowledged; fail at the deadline."""
        await eventually(
            lambda: True if len(self.acknowledged) >= acknowledged else None,
            timeout_seconds=within,
            description=f"{acknowledged} orders acknowledged",
        )


@asynccontextmanager
async def steady_load(stack: Stack, *, per_second: float, tokens: Sequence[str] = ()) -> AsyncIterator[Load]:
    """Place orders at ``per_second`` through the gateways in rotation until the block ends;
    a refused request is only counted, one with an unknown outcome tried again (same key).

    ``tokens``: the customers' (one each, as ``CUSTOMERS``); by default, issued now by the stack."""
    load = Load(Run())
    tokens = tokens or await stack.tokens(CUSTOMERS)
    assert len(tokens) == len(CUSTOMERS), "one token per customer"
    timeout = aiohttp.ClientTimeout(total=CLIENT_TIMEOUT_SECONDS)
    async with aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=0)) as http:

        async def post(token: str, key: str) -> Answer:
            gateway = stack.gateway_for_next_request()
            if gateway is None:
                raise NoGatewayReady
            headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": key}
            async with http.post(f"{gateway}{ORDERS_PATH}", json=ORDER_BODY, headers=headers) as answer:
                return Answer(answer.status, {k.lower(): v for k, v in answer.headers.items()}, await answer.read())

        async def place(index: int) -> Answer:
            key = str(uuid.uuid4())
            load.issued[key] = CUSTOMERS[index % len(CUSTOMERS)]
            for _ in range(TRIES - 1):
                try:
                    answer = await post(tokens[index % len(CUSTOMERS)], key)
                except (aiohttp.ClientError, TimeoutError):
                    pass
                else:
                    if answer.status not in UNKNOWN_STATUSES:
                        return answer
                load.retried += 1
            # The last try: however it ends is the attempt's outcome.
            return await post(tokens[index % len(CUSTOMERS)], key)

        async with running_open_loop(place, rate=per_second) as run:
            load.run = run
            yield load


def _detail(body: bytes) -> str:
    """A problem document's ``detail``, or the start of whatever else the body was."""
    try:
        return str(json.loads(body)["detail"])
    except (ValueError, KeyError, TypeError):
        return body[:80].decode(errors="replace")
