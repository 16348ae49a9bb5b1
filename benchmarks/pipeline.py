"""The whole pipeline under an open-loop arrival rate stepped upward.

Every process type runs as its own OS process (tests/stack.py, the same start-up as the
end-to-end tests) on fresh databases and private exchanges and queues. Orders enter through
the gateway at a fixed rate per step; each step then waits until every accepted order is
notified, and reports what the servers themselves stamped (created_at → notified_at) and
the CPU every process burned — Dozen's, PostgreSQL's and RabbitMQ's — per order.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import aiohttp
import asyncpg
from tests.stack import running_stack

from shared.testing.amqp import AmqpNames
from shared.testing.databases import scratch_databases
from shared.testing.otlp import OtlpSink
from shared.testing.smtp import SmtpSink

from . import cpu
from .load import Outcome, open_loop, percentile

BODY = {"currency": "EUR", "items": [{"sku": "BENCH-1", "quantity": 1, "unit_price_cents": 999}]}
CUSTOMERS = 20
NOTIFIED_TIMEOUT_SECONDS = 120
IDLE_SECONDS = 5.0
OVERLOAD_ERROR_RATIO = 0.1


def ms(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


async def _wait_notified(pool: asyncpg.Pool, order_ids: list[str]) -> list[float]:
    """Accepted → notified of each order (ms), once all are notified or the deadline passes."""
    deadline = time.monotonic() + NOTIFIED_TIMEOUT_SECONDS
    while True:
        rows = await pool.fetch(
            "SELECT EXTRACT(EPOCH FROM notified_at - created_at) * 1000 AS ms FROM orders"
            " WHERE id = ANY($1::uuid[]) AND notified_at IS NOT NULL",
            order_ids,
        )
        if len(rows) == len(order_ids) or time.monotonic() > deadline:
            return [float(row["ms"]) for row in rows]
        await asyncio.sleep(0.2)  # polling the database for a condition, with a deadline


def _step_figures(
    rate: float, outcome: Outcome, notified_ms: list[float], cpu_seconds: dict[str, float]
) -> dict[str, Any]:
    accepted = outcome.ok
    total_cpu = sum(cpu_seconds.values())
    return {
        "target_per_second": rate,
        "accepted": accepted,
        "errors": outcome.error_count,
        "error_kinds": outcome.errors,
        "accepted_per_second": round(accepted / outcome.seconds, 1),
        "api_p50_ms": ms(percentile(outcome.latencies_ms, 0.50)),
        "api_p99_ms": ms(percentile(outcome.latencies_ms, 0.99)),
        "api_p999_ms": ms(percentile(outcome.latencies_ms, 0.999)),
        "notified": len(notified_ms),
        "notified_p50_ms": ms(percentile(notified_ms, 0.50)),
        "notified_p99_ms": ms(percentile(notified_ms, 0.99)),
        "cpu_ms_per_order": round(total_cpu * 1000 / max(accepted, 1), 3),
        "cpu_ms_per_order_by_group": {
            group: round(seconds * 1000 / max(accepted, 1), 3) for group, seconds in cpu_seconds.items()
        },
    }


async def stepped(
    server_url: str,
    amqp_url: str,
    redis_url: str,
    *,
    rates: list[float],
    step_seconds: float,
    telemetry: bool,
    log_level: str,
) -> dict[str, Any]:
    names = AmqpNames(f"bench-{uuid.uuid4().hex[:8]}")
    databases = [f"bench_{uuid.uuid4().hex[:8]}_{service}" for service in ("orders", "notifier")]
    smtp, traces = SmtpSink(), OtlpSink()
    smtp.start()
    await traces.start()
    environment = (
        {"OTEL_EXPORTER_OTLP_ENDPOINT": traces.endpoint, "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}
        if telemetry
        else {"OTEL_SDK_DISABLED": "true"}
    )
    environment |= {f"{prefix}_LOG_LEVEL": log_level for prefix in ("GATEWAY", "ORDERS", "NOTIFIER")}
    # The limiter is checked on every request as deployed, but never refuses one: the
    # benchmark measures the pipeline, not the per-customer limit.
    environment |= {"GATEWAY_RATE_LIMIT_PER_SECOND": "100000", "GATEWAY_RATE_LIMIT_BURST": "100000"}
    try:
        async with (
            scratch_databases(server_url, databases) as (orders_database_url, notifier_database_url),
            running_stack(
                orders_database_url=orders_database_url,
                notifier_database_url=notifier_database_url,
                amqp_url=amqp_url,
                redis_url=redis_url,
                names=names,
                smtp=smtp,
                telemetry_env=environment,
            ) as stack,
        ):
            tokens = [await stack.token(f"bench-{index}") for index in range(CUSTOMERS)]
            groups = [cpu.pids(name, [process.pid]) for name, process in stack.processes.items()]
            groups += [cpu.postgres(), cpu.rabbitmq()]
            pool = await asyncpg.create_pool(stack.orders_database_url, min_size=1, max_size=2)
            connector = aiohttp.TCPConnector(limit=0)
            try:
                async with aiohttp.ClientSession(connector=connector) as session:

                    async def place(index: int) -> str:
                        headers = {
                            "Authorization": f"Bearer {tokens[index % CUSTOMERS]}",
                            "Idempotency-Key": str(uuid.uuid4()),
                        }
                        async with session.post(f"{stack.gateway_url}/api/v1/orders", json=BODY, headers=headers) as r:
                            if r.status != 201:
                                raise RuntimeError(f"HTTP {r.status}")
                            order_id: str = (await r.json())["id"]
                            return order_id

                    # What the processes burn with no orders at all (samplers, heartbeats, polls).
                    before = cpu.snapshot(groups)
                    await asyncio.sleep(IDLE_SECONDS)  # a measurement window, not a wait for a condition
                    idle = {
                        group: round(seconds * 1000 / IDLE_SECONDS, 1)
                        for group, seconds in cpu.spent(before, cpu.snapshot(groups)).items()
                    }
                    print(f"  idle CPU ms/s: {idle}", flush=True)
                    steps: list[dict[str, Any]] = []
                    for rate in rates:
                        before = cpu.snapshot(groups)
                        outcome = await open_loop(place, rate=rate, seconds=step_seconds)
                        notified_ms = await _wait_notified(pool, [str(result) for result in outcome.results])
                        used = cpu.spent(before, cpu.snapshot(groups))
                        steps.append(_step_figures(rate, outcome, notified_ms, used))
                        print(f"  {'on ' if telemetry else 'off'} {rate:>6.0f}/s: {steps[-1]}", flush=True)
                        if outcome.error_count > OVERLOAD_ERROR_RATIO * rate * step_seconds:
                            # Deeper overload teaches nothing more and only lengthens the run.
                            print(f"  overloaded at {rate:.0f}/s: higher steps skipped", flush=True)
                            break
                    return {"idle_cpu_ms_per_second": idle, "steps": steps}
            finally:
                await pool.close()
    finally:
        smtp.stop()
        await traces.stop()
        await names.delete_all(amqp_url)
