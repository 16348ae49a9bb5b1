"""Rate limits, shared by every gateway replica through Redis: per customer, and per client
address for requests that carry no valid token.

The algorithm is GCRA (a token bucket kept as one timestamp per key): each key may make
``burst`` requests at once and ``per_second`` on average. It runs as one Lua script, on
Redis's clock, so replicas and their clocks never disagree; the requests taken up in one turn
of the event loop are checked by one call of it (shared.batching).

When Redis fails, or has not answered within the time a rate check may take
(GATEWAY_REDIS_SLOW_SECONDS), the same limits are kept in this process's memory
(gateway.gcra) instead: a counter and a (throttled) warning say so. An outage of the
limiter's store, or its slowness, must neither become an outage of the API for every
customer (failing closed; or slow answers the in-flight bound refuses for) nor let one
greedy client take all of it (failing open). After a failure Redis is left alone for a
cool-down, so an outage costs one wait per cool-down, not one per request. A busy CPU, slow
to read Redis's answer, may be taken for a slow Redis: the cost is a cool-down of limits
kept per replica, which is why the budget can be tight.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import NamedTuple

import redis.asyncio as redis
from aiohttp import web
from prometheus_client import Counter
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from gateway.gcra import LocalGcra
from gateway.settings import WebSettings
from shared.batching import Coalescer
from shared.web import CleanupContext

log = logging.getLogger(__name__)

LIMITED = Counter(
    "dozen_gateway_rate_limited",
    "Requests refused with 429, by the limit per customer or per client address.",
    ["scope"],
)
LOCAL = Counter(
    "dozen_gateway_rate_limit_local",
    "Requests checked against this replica's own limit because Redis did not answer.",
    ["scope"],
)
FAILURES = Counter(
    "dozen_gateway_rate_limit_failures",
    "Calls to Redis that failed, timed out or were slow (each starts a cool-down).",
    ["error"],
)
WARN_EVERY_SECONDS = 10.0

# KEYS: one key per request (a customer twice is checked twice, in order). ARGV: emission
# interval and burst tolerance, in microseconds. Returns, per key, 0 when admitted, else the
# microseconds until the next request would be.
GCRA_SCRIPT = """
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
# What a call to Redis fails with: redis-py's own errors, and RuntimeError, which uvloop raises
# for a write to a connection Redis has reset (redis-py drops the connection and lets it through:
# the "Redis down" fault scenario answered 500s until it was caught here).
REDIS_FAILURES = (RedisError, OSError, TimeoutError, RuntimeError)
# Requests checked in one call at most (one turn of the gateway's event loop rarely has more).
MAX_BATCH = 256


class RateLimited(Exception):
    def __init__(self, retry_after_seconds: int) -> None:
        super().__init__(f"retry after {retry_after_seconds} s")
        self.retry_after_seconds = retry_after_seconds


class RateLimiter:
    def __init__(
        self,
        client: redis.Redis,
        *,
        scope: str,
        per_second: float,
        burst: int,
        key_prefix: str,
        cooldown_seconds: float,
        slow_seconds: float,
    ) -> None:
        self._script = client.register_script(GCRA_SCRIPT)
        # The checks asked for in one turn of the event loop go to Redis in one call.
        self._check = Coalescer(self._check_all, max_batch=MAX_BATCH)
        self._interval_us = round(1_000_000 / per_second)
        self._tolerance_us = self._interval_us * (burst - 1)
        self._key_prefix = key_prefix
        self._scope = scope
        self._local = LocalGcra(per_second=per_second, burst=burst)
        LIMITED.labels(scope)
        LOCAL.labels(scope)
        self._cooldown = cooldown_seconds
        self._slow = slow_seconds
        self._resume_at = -math.inf
        self._warned_at = -math.inf

    async def admit(self, key: str) -> None:
        """Return if ``key`` may go ahead; raise RateLimited with the seconds to wait if not."""
        if time.monotonic() < self._resume_at:
            wait_seconds = self._check_locally(key)
        else:
            try:
                # No request waits on the limiter longer than a rate check should take: past
                # that, this one is checked here, and the next ones too for a cool-down.
                async with asyncio.timeout(self._slow) as budget:
                    wait_seconds = await self._check(key) / 1_000_000
            except REDIS_FAILURES as error:
                self._step_aside("Slow" if budget.expired() else type(error).__name__)
                wait_seconds = self._check_locally(key)
        if wait_seconds > 0:
            LIMITED.labels(self._scope).inc()
            raise RateLimited(max(1, math.ceil(wait_seconds)))

    def _check_locally(self, key: str) -> float:
        LOCAL.labels(self._scope).inc()
        return self._local.wait_seconds(key)

    async def _check_all(self, keys: Sequence[str]) -> list[int | Exception]:
        keys = [self._key_prefix + key for key in keys]
        waits = await self._script(keys=keys, args=[self._interval_us, self._tolerance_us])
        return [int(wait) for wait in waits]

    def _step_aside(self, reason: str) -> None:
        """Leave Redis alone for a cool-down, counted and (at most every so often) said."""
        FAILURES.labels(reason).inc()
        self._resume_at = time.monotonic() + self._cooldown
        now = time.monotonic()
        if now - self._warned_at >= WARN_EVERY_SECONDS:
            self._warned_at = now
            log.warning("rate limiter unavailable or slow, limiting locally", extra={"error": reason})


class RateLimits(NamedTuple):
    per_customer: RateLimiter
    # For requests without a valid token (none, or one that fails): keyed by the peer's
    # address as the socket sees it. X-Forwarded-For is the client's to write, so it counts
    # for nothing here.
    per_address: RateLimiter


RATE_LIMITS = web.AppKey("rate_limits", RateLimits)
# Each customer's state is one key under this prefix, in the Redis GATEWAY_REDIS_URL names;
# each client address's under the other.
KEY_PREFIX = "dozen:gateway:rate:"
ADDRESS_KEY_PREFIX = "dozen:gateway:rate-address:"
_NO_RETRIES = Retry(NoBackoff(), retries=0)


async def _warm_up(client: redis.Redis, *, timeout_seconds: float) -> None:
    """A connection made (and authenticated) and the script loaded before the first request.

    Otherwise the first rate check pays for all three round trips, past the budget a check may
    take on a busy machine, and every check of the cool-down after it is kept locally. At best
    effort: a Redis not there yet is the first request's to find, as at any other time.
    """
    try:
        async with asyncio.timeout(timeout_seconds):
            await client.script_load(GCRA_SCRIPT)
    except REDIS_FAILURES as error:
        log.warning(
            "Redis not reached at start; rate limits are checked locally until it is",
            extra={"error": type(error).__name__},
        )


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

        def limiter(scope: str, per_second: float, burst: int, key_prefix: str) -> RateLimiter:
            return RateLimiter(
                client,
                scope=scope,
                per_second=per_second,
                burst=burst,
                key_prefix=key_prefix,
                cooldown_seconds=settings.redis_cooldown_seconds,
                slow_seconds=settings.redis_slow_seconds,
            )

        await _warm_up(client, timeout_seconds=settings.redis_timeout_seconds)
        app[RATE_LIMITS] = RateLimits(
            per_customer=limiter("customer", settings.rate_limit_per_second, settings.rate_limit_burst, KEY_PREFIX),
            per_address=limiter(
                "address",
                settings.anonymous_rate_limit_per_second,
                settings.anonymous_rate_limit_burst,
                ADDRESS_KEY_PREFIX,
            ),
        )
        try:
            yield
        finally:
            # The pool was handed in, so the client would leave its connections open.
            await client.aclose(close_connection_pool=True)

    return limiter_context
