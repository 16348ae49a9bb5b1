"""Per-customer rate limiting, shared by every gateway replica through Redis.

The algorithm is GCRA (a token bucket kept as one timestamp per customer): each customer
may make ``burst`` requests at once and ``per_second`` on average. It runs as one Lua
script, on Redis's clock, so replicas and their clocks never disagree; the requests taken up
in one turn of the event loop are checked by one call of it (shared.batching).

When Redis cannot answer within its timeout the gateway **fails open**: the request goes
through, a counter and a (throttled) warning say so. The limiter protects capacity from one
greedy customer; an outage of the limiter's store should not become an outage of the API
for every customer. The admission bounds (in-flight requests, orders' own) still hold. After
a failure Redis is left alone for a cool-down, so an outage costs one timeout per cool-down,
not one per request; that is what lets the timeout be generous enough that a busy CPU, which
delays reading Redis's answer, is not mistaken for an outage.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import redis.asyncio as redis
from aiohttp import web
from prometheus_client import Counter
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from gateway.settings import WebSettings
from shared.batching import Coalescer
from shared.web import CleanupContext

log = logging.getLogger(__name__)

LIMITED = Counter("dozen_gateway_rate_limited", "Requests refused with 429 by the per-customer limit.")
UNCHECKED = Counter(
    "dozen_gateway_rate_limit_unchecked", "Requests let through unchecked because Redis did not answer (fail open)."
)
FAILURES = Counter(
    "dozen_gateway_rate_limit_failures", "Calls to Redis that failed or timed out (each starts a cool-down).", ["error"]
)
WARN_EVERY_SECONDS = 10.0

# KEYS: one key per request (a customer twice is checked twice, in order). ARGV: emission
# interval and burst tolerance, in microseconds. Returns, per key, 0 when admitted, else the
# microseconds until the next request would be.
_GCRA = """
local now = redis.call('TIME')
now = tonumber(now[1]) * 1000000 + tonumber(now[2])
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local waits = {}
for i, key in ipairs(KEYS) do
  local tat = tonumber(redis.call('GET', key) or now)
  if tat < now then tat = now end
  if tat - now > tolerance then
    waits[i] = tat - now - tolerance
  else
    tat = tat + interval
    redis.call('SET', key, tat, 'PX', math.ceil((tat - now) / 1000))
    waits[i] = 0
  end
end
return waits
"""
# Requests checked in one call at most (one turn of the gateway's event loop rarely has more).
MAX_BATCH = 256


class RateLimited(Exception):
    def __init__(self, retry_after_seconds: int) -> None:
        super().__init__(f"retry after {retry_after_seconds} s")
        self.retry_after_seconds = retry_after_seconds


class RateLimiter:
    def __init__(
        self, client: redis.Redis, *, per_second: float, burst: int, key_prefix: str, cooldown_seconds: float
    ) -> None:
        self._script = client.register_script(_GCRA)
        # The checks asked for in one turn of the event loop go to Redis in one call.
        self._check = Coalescer(self._check_all, max_batch=MAX_BATCH)
        self._interval_us = round(1_000_000 / per_second)
        self._tolerance_us = self._interval_us * (burst - 1)
        self._key_prefix = key_prefix
        self._cooldown = cooldown_seconds
        self._resume_at = -math.inf
        self._warned_at = -math.inf

    async def admit(self, customer: str) -> None:
        """Return if ``customer`` may go ahead; raise RateLimited with the seconds to wait if not."""
        if time.monotonic() < self._resume_at:
            UNCHECKED.inc()
            return
        try:
            wait_us = await self._check(customer)
        except (RedisError, OSError, TimeoutError) as error:
            FAILURES.labels(type(error).__name__).inc()
            UNCHECKED.inc()
            self._resume_at = time.monotonic() + self._cooldown
            self._warn(error)
            return
        if wait_us > 0:
            LIMITED.inc()
            raise RateLimited(max(1, math.ceil(wait_us / 1_000_000)))

    async def _check_all(self, customers: Sequence[str]) -> list[int | Exception]:
        keys = [self._key_prefix + customer for customer in customers]
        waits = await self._script(keys=keys, args=[self._interval_us, self._tolerance_us])
        return [int(wait) for wait in waits]

    def _warn(self, error: Exception) -> None:
        now = time.monotonic()
        if now - self._warned_at >= WARN_EVERY_SECONDS:
            self._warned_at = now
            log.warning("rate limiter unavailable, admitting unchecked", extra={"error": type(error).__name__})


RATE_LIMITER = web.AppKey("rate_limiter", RateLimiter)
# Each customer's state is one key under this prefix, in the Redis GATEWAY_REDIS_URL names.
KEY_PREFIX = "dozen:gateway:rate:"
_NO_RETRIES = Retry(NoBackoff(), retries=0)


def rate_limiter(settings: WebSettings) -> CleanupContext:
    @asynccontextmanager
    async def limiter_context(app: web.Application) -> AsyncIterator[None]:
        pool = redis.BlockingConnectionPool.from_url(
            settings.redis_url.get_secret_value(),
            # Bounded: past it, a request waits for a connection no longer than the timeout.
            max_connections=settings.redis_max_connections,
            timeout=settings.redis_timeout_seconds,
            socket_timeout=settings.redis_timeout_seconds,
            socket_connect_timeout=settings.redis_timeout_seconds,
            retry=_NO_RETRIES,
        )
        # A dead Redis must cost one timeout per cool-down, not a retry loop (redis-py retries
        # three times by default).
        client = redis.Redis(connection_pool=pool, retry=_NO_RETRIES)
        app[RATE_LIMITER] = RateLimiter(
            client,
            per_second=settings.rate_limit_per_second,
            burst=settings.rate_limit_burst,
            key_prefix=KEY_PREFIX,
            cooldown_seconds=settings.redis_cooldown_seconds,
        )
        try:
            yield
        finally:
            await client.aclose()

    return limiter_context
