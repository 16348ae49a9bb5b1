"""Dozen's public API as a customer's client uses it: place, read and list orders, wait for them.

The one client of the tests, the audit and `make smoke`; the benchmark and the fault suite's
load send the same order body through leaner paths of their own.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp

from shared.testing import eventually

ORDERS_PATH = "/api/v1/orders"
# The order every harness places: what is in it is beside the point of every check.
ORDER_BODY: dict[str, Any] = {
    "currency": "EUR",
    "items": [{"sku": "BOOK-1", "quantity": 2, "unit_price_cents": 1250}],
}
# Refusals past capacity a patient client sits out (Retry-After) before it gives up on an order.
REFUSALS_SAT_OUT = 20


@dataclass(frozen=True)
class Reply:
    status: int
    headers: Mapping[str, str]
    body: Any  # the JSON answer; None when there is none

    @property
    def order(self) -> dict[str, Any]:
        """The order the reply carries: fails, with the reply, when it carries none."""
        if self.status not in {200, 201} or not isinstance(self.body, dict):
            raise AssertionError(f"no order in the reply: HTTP {self.status} {self.body}")
        return self.body


class Customer:
    """One customer of the gateway, by bearer token."""

    def __init__(self, http: aiohttp.ClientSession, gateway_url: str, token: str) -> None:
        self._http = http
        self._url = gateway_url.rstrip("/") + ORDERS_PATH
        self._auth = {"Authorization": f"Bearer {token}"}

    async def place(
        self, body: Mapping[str, Any] = ORDER_BODY, *, key: str | None = None, patient: bool = True
    ) -> Reply:
        """POST one order under ``key`` (a fresh one if not given). A patient client, refused
        past capacity (503 or 429 with Retry-After), waits as told and asks again, same key."""
        headers = self._auth | {"Idempotency-Key": key or str(uuid.uuid4())}
        for _ in range(REFUSALS_SAT_OUT if patient else 1):
            async with self._http.post(self._url, json=body, headers=headers) as answer:
                reply = await _reply(answer)
            if not (patient and reply.status in {429, 503} and "Retry-After" in reply.headers):
                return reply
            await asyncio.sleep(float(reply.headers["Retry-After"]))  # the server's request, not a sync
        return reply

    async def order(self, order_id: str) -> Reply:
        async with self._http.get(f"{self._url}/{order_id}", headers=self._auth) as answer:
            return await _reply(answer)

    async def orders(self) -> list[dict[str, Any]]:
        """Every order of this customer, page after page."""
        found: list[dict[str, Any]] = []
        cursor = None
        while True:
            params = {"limit": "100"} | ({"after": cursor} if cursor else {})
            async with self._http.get(self._url, params=params, headers=self._auth) as answer:
                page = await _reply(answer)
            if page.status != 200:
                raise AssertionError(f"listing failed: HTTP {page.status} {page.body}")
            found.extend(page.body["items"])
            cursor = page.body["next_cursor"]
            if cursor is None:
                return found

    async def wait_notified(self, order_ids: Iterable[str], *, timeout_seconds: float = 60) -> list[dict[str, Any]]:
        """The orders, once every one of them is notified; fails at the deadline."""
        wanted = set(order_ids)

        async def all_notified() -> list[dict[str, Any]] | None:
            mine = [order for order in await self.orders() if order["id"] in wanted]
            done = len(mine) == len(wanted) and all(order["status"] == "notified" for order in mine)
            return mine if done else None

        notified: list[dict[str, Any]] = await eventually(
            all_notified, timeout_seconds=timeout_seconds, description=f"{len(wanted)} orders notified"
        )
        return notified


async def _reply(answer: aiohttp.ClientResponse) -> Reply:
    body = await answer.json(content_type=None) if await answer.read() else None
    return Reply(answer.status, answer.headers.copy(), body)
