"""What a test asks the running system besides its API: its metrics, what crosses its
exchanges, and what the notifier recorded."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import aio_pika
import aiohttp
from aio_pika.abc import AbstractIncomingMessage
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from shared.testing import fetch

HTTP_TIMEOUT = aiohttp.ClientTimeout(total=30)


async def _samples(port: int) -> list[Sample]:
    """Every sample a process's /metrics shows now."""
    async with (
        aiohttp.ClientSession(timeout=HTTP_TIMEOUT) as http,
        http.get(f"http://127.0.0.1:{port}/metrics") as answer,
    ):
        text = await answer.text()
    return [found for family in text_string_to_metric_families(text) for found in family.samples]


async def metric_sum(port: int, sample: str, **labels: str) -> float:
    """The sum of every ``sample`` series on a process's /metrics matching ``labels``."""
    return sum(
        found.value
        for found in await _samples(port)
        if found.name == sample and all(found.labels.get(name) == value for name, value in labels.items())
    )


async def build_info(port: int) -> dict[str, str] | None:
    """The labels of a process's dozen_build_info series (None: it has none)."""
    return next((dict(found.labels) for found in await _samples(port) if found.name == "dozen_build_info"), None)


async def notifications_per_order(notifier_database_url: str, order_ids: list[str]) -> Counter[str]:
    rows = await fetch(
        notifier_database_url,
        "SELECT order_id::text AS order_id FROM notifications WHERE order_id = ANY($1::uuid[])",
        order_ids,
    )
    return Counter(row["order_id"] for row in rows)


@dataclass
class Tap:
    """Every event that crossed the tapped exchanges: (event type, subject) -> times seen."""

    seen: Counter[tuple[str, str]] = field(default_factory=Counter)

    def times(self, event_type: str, subject: str) -> int:
        return self.seen[event_type, subject]

    def subjects(self, event_type: str) -> Counter[str]:
        """Subject -> times seen, for the events of one type."""
        return Counter({subject: times for (kind, subject), times in self.seen.items() if kind == event_type})


@asynccontextmanager
async def tapped(amqp_url: str, exchanges: list[str]) -> AsyncIterator[Tap]:
    """A private queue bound to ``exchanges`` with ``#``: a copy of every event published there."""
    tap = Tap()

    async def record(message: AbstractIncomingMessage) -> None:
        event = json.loads(message.body)
        tap.seen[str(event.get("type")), str(event.get("subject"))] += 1

    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel()
        queue = await channel.declare_queue(exclusive=True, auto_delete=True)
        for exchange in exchanges:
            await queue.bind(exchange, "#")
        await queue.consume(record, no_ack=True)
        yield tap
    finally:
        await connection.close()
