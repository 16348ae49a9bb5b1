"""Per-customer rate limiting, shared by every gateway replica through Redis.

The algorithm is GCRA (a token bucket kept as one timestamp per customer): each customer
may make ``burst`` requests at once and ``per_second`` on average. It runs as one Lua
script, on Redis's clock, so replicas and their clocks never disagree.

When Redis cannot answer within its timeout the gateway **fails open**: the request goes
through, a counter and a (throttled) warning say so. The limiter protects capacity from one
greedy customer; an outage of the limiter's store should not become an outage of the API
for every customer. Orders' own limits (pool sizes, timeouts) still bound the damage.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import redis.asyncio as redis
from aiohttp import web
from prometheus_client import Counter
from redis.exceptions import RedisError

from gateway.settings import WebSettings
from shared.web import CleanupContext

log = logging.getLogger(__name__)

LIMITED = Counter("dozen_gateway_rate_limited", "Requests refused with 429 by the per-customer limit.")
UNCHECKED = Counter(
    "dozen_gateway_rate_limit_unchecked", "Requests let through unchecked because Redis did not answer (fail open)."
)
WARN_EVERY_SECONDS = 10.0

# KEYS[1]: the customer's key. ARGV: emission interval and burst tolerance, in microseconds.
# Returns 0 when admitted, else the microseconds until the next request would be.
_GCRA = """
local now = redis.call('TIME')
now = tonumber(now[1]) * 1000000 + tonumber(now[2])
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
if tat - now > tolerance then
  return tat - now - tolerance
end
tat = tat + interval
redis.call('SET', KEYS[1], tat, 'PX', math.ceil((tat - now) / 1000))
return 0
"""


class RateLimited(Exception):
    def __init__(self, retry_after_seconds: int) -> None:
        super().__init__(f"retry after {retry_after_seconds} s")
        self.retry_after_seconds = retry_after_seconds


class RateLimiter:
    def __init__(self, client: redis.Redis, *, per_second: float, burst: int, key_prefix: str) -> None:
        self._script = client.register_script(_GCRA)
        self._interval_us = round(1_000_000 / per_second)
        self._tolerance_us = self._interval_us * (burst - 1)
        self._key_prefix = key_prefix
        self._warned_at = -math.inf

    async def admit(self, customer: str) -> None:
        """Return if ``customer`` may go ahead; raise RateLimited with the seconds to wait if not."""
        try:
            wait_us = int(
                await self._script(keys=[self._key_prefix + customer], args=[self._interval_us, self._tolerance_us])
            )
        except (RedisError, OSError, TimeoutError) as error:
            UNCHECKED.inc()
            self._warn(error)
            return
        if wait_us > 0:
            LIMITED.inc()
            raise RateLimited(max(1, math.ceil(wait_us / 1_000_000)))

    def _warn(self, error: Exception) -> None:
        now = time.monotonic()
        if now - self._warned_at >= WARN_EVERY_SECONDS:
            self._warned_at = now
            log.warning("rate limiter unavailable, admitting unchecked", extra={"error": type(error).__name__})


RATE_LIMITER = web.AppKey("rate_limiter", RateLimiter)


def rate_limiter(settings: WebSettings) -> CleanupContext:
    @asynccontextmanager
    async def limiter_context(app: web.Application) -> AsyncIterator[None]:
        client = redis.from_url(
            settings.redis_url.get_secret_value(),
            socket_timeout=settings.redis_timeout_seconds,
            socket_connect_timeout=settings.redis_timeout_seconds,
            # A dead Redis must cost each request one short timeout, not a retry loop.
            retry_on_timeout=False,
        )
        app[RATE_LIMITER] = RateLimiter(
            client,
            per_second=settings.rate_limit_per_second,
            burst=settings.rate_limit_burst,
            key_prefix="dozen:gateway:rate:",
        )
        try:
            yield
        finally:
            await client.aclose()

    return limiter_context
