"""The board's health strip: the pipeline's state, from Dozen's processes' own /metrics.

Each call reads every configured /metrics (GATEWAY_BOARD_METRICS_URLS) at once, with a short
timeout, and answers the few figures the strip shows: the counters and the histogram's
cumulative buckets as they stand. Rates and the p99 are the page's to work out from two
answers, so the gateway keeps nothing between calls (any replica answers any board).
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

import aiohttp
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from gateway.keys import SETTINGS
from gateway.routes import authenticated_customer

HEALTH_PATH = "/board/health"
SCRAPE_TIMEOUT_SECONDS = 1.0
DEAD_LETTER_SUFFIX = ".dlq"


async def health(request: web.Request) -> web.Response:
    await authenticated_customer(request)
    urls = request.app[SETTINGS].board_metrics_url_list
    timeout = aiohttp.ClientTimeout(total=SCRAPE_TIMEOUT_SECONDS)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        scraped = await asyncio.gather(*(_scrape(session, url) for url in urls), return_exceptions=True)
    texts = [text for text in scraped if isinstance(text, str)]
    return web.json_response({"scraped": len(texts), "of": len(urls), **figures(_samples(texts))})


async def _scrape(session: aiohttp.ClientSession, url: str) -> str:
    async with session.get(url) as answer:
        answer.raise_for_status()
        return await answer.text()


def _samples(texts: Iterable[str]) -> list[Sample]:
    return [sample for text in texts for family in text_string_to_metric_families(text) for sample in family.samples]


def figures(samples: Iterable[Sample]) -> dict[str, Any]:
    """What the strip shows, from the samples of every process (a gauge seen by several: the largest)."""
    accepted = notified = backlog = 0.0
    queues: dict[str, float] = defaultdict(float)
    buckets: dict[str, float] = defaultdict(float)
    for sample in samples:
        match sample.name:
            case "dozen_http_server_request_duration_seconds_count" if sample.labels == {
                "route": "/orders",
                "method": "POST",
                "status": "2xx",
            }:
                accepted += sample.value
            case "dozen_order_accepted_to_notified_seconds_count":
                notified += sample.value
            case "dozen_order_accepted_to_notified_seconds_bucket":
                buckets[sample.labels["le"]] += sample.value
            case "dozen_outbox_backlog":
                backlog = max(backlog, sample.value)
            case "dozen_queue_messages":
                queue = sample.labels["queue"]
                queues[queue] = max(queues[queue], sample.value)
    return {
        "accepted_total": accepted,
        "notified_total": notified,
        "outbox_backlog": backlog,
        "queues": {queue: depth for queue, depth in queues.items() if not queue.endswith(DEAD_LETTER_SUFFIX)},
        "dead_letters": {queue: depth for queue, depth in queues.items() if queue.endswith(DEAD_LETTER_SUFFIX)},
        "notified_buckets": dict(buckets),
    }
