"""How many orders/s does one `orders web` process accept? A measurement, not a test.

Starts `orders web` on a fresh, migrated database, sends POST /orders with unique
Idempotency-Keys from a pool of concurrent clients over loopback, and prints the
throughput and latency percentiles. The client runs on the same machine and takes
CPU too, so this is a floor for the server, not a ceiling.

    BENCH_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres \\
        uv run python services/orders/benchmarks/accept_orders.py --orders 5000 --concurrency 32
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import statistics
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import asyncpg

from shared.testing import ServiceProcess, free_port, wait_until_ready
from shared.testing.backing_services import benchmark_server_url

ORDERS_SCRIPT = str(Path(sys.executable).with_name("orders"))
# Posted as the gateway would: orders web answers no one else.
API_TOKEN = secrets.token_hex(32)
BODY = {"customer_id": "bench", "currency": "EUR", "items": [{"sku": "SKU-1", "quantity": 1, "unit_price_cents": 999}]}


async def run(
    server_url: str, orders: int, concurrency: int, pool_size: int, extra_env: dict[str, str] | None = None
) -> dict[str, float]:
    database = f"bench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(server_url)
    await admin.execute(f'CREATE DATABASE "{database}"')
    url = urlunsplit(urlsplit(server_url)._replace(path=f"/{database}"))
    port, management_port = free_port(), free_port()
    env = {
        "ORDERS_DATABASE_URL": url,
        "ORDERS_PORT": str(port),
        "ORDERS_MANAGEMENT_PORT": str(management_port),
        "ORDERS_API_TOKEN": API_TOKEN,
        # Access logs at INFO would measure the logging as much as the service.
        "ORDERS_LOG_LEVEL": "WARNING",
        "ORDERS_DB_POOL_MAX_SIZE": str(pool_size),
        **(extra_env or {}),
    }
    try:
        migrate = ServiceProcess([ORDERS_SCRIPT, "migrate"], env=env)
        await migrate.start()
        if await migrate.wait(timeout_seconds=60) != 0:
            raise SystemExit(f"orders migrate failed:\n{migrate.output()}")
        web = ServiceProcess([ORDERS_SCRIPT, "web"], env=env)
        await web.start()
        try:
            await wait_until_ready(management_port, what="orders web", process=web)
            return await _load(port, orders, concurrency)
        finally:
            await web.stop()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        await admin.close()


async def _load(port: int, orders: int, concurrency: int) -> dict[str, float]:
    base = f"http://127.0.0.1:{port}"
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(total=30),
        headers={"Authorization": f"Bearer {API_TOKEN}"},
    ) as http:
        payload = json.dumps(BODY).encode()
        latencies: list[float] = []
        errors = 0

        async def clients(count: int, record: bool) -> None:
            remaining = iter(range(count))

            async def client() -> None:
                nonlocal errors
                for _ in remaining:
                    headers = {"Idempotency-Key": uuid.uuid4().hex, "Content-Type": "application/json"}
                    started = time.perf_counter()
                    async with http.post(f"{base}/orders", data=payload, headers=headers) as response:
                        await response.read()
                        errors += response.status != 201
                    if record:
                        latencies.append(time.perf_counter() - started)

            await asyncio.gather(*(client() for _ in range(concurrency)))

        # Warm-up: fills the connection pools on both sides; not counted.
        await clients(min(500, orders // 10), record=False)
        started = time.perf_counter()
        await clients(orders, record=True)
        elapsed = time.perf_counter() - started
    measured = len(latencies)
    latencies.sort()
    return {
        "orders": measured,
        "errors": errors,
        "seconds": round(elapsed, 2),
        "orders_per_second": round(measured / elapsed, 1),
        "p50_ms": round(statistics.median(latencies) * 1000, 2),
        "p99_ms": round(latencies[int(measured * 0.99) - 1] * 1000, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--orders", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--pool-size", type=int, default=10)
    arguments = parser.parse_args()
    server_url = benchmark_server_url("postgresql")
    if not server_url:
        raise SystemExit("set BENCH_DATABASE_URL (or TEST_DATABASE_URL) to a PostgreSQL server URL")
    result = asyncio.run(run(server_url, arguments.orders, arguments.concurrency, arguments.pool_size))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
