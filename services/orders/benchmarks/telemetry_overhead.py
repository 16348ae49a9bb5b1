"""What tracing costs: orders/s of one `orders web` with tracing on, then off, in one run.

On: every request sampled (always_on) and exported over OTLP/HTTP to a sink in this
process that accepts without decoding. Off: OTEL_SDK_DISABLED=true. Same database server, same load, back to back,
each mode run twice alternately to even out drift.

    BENCH_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres \\
        uv run python services/orders/benchmarks/telemetry_overhead.py --orders 5000 --concurrency 16
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics

from accept_orders import run

from shared.testing.backing_services import benchmark_server_url
from shared.testing.otlp import OtlpSink


async def compare(server_url: str, orders: int, concurrency: int) -> dict[str, object]:
    sink = OtlpSink()
    await sink.start()
    on = {
        "OTEL_TRACES_SAMPLER": "always_on",
        "OTEL_EXPORTER_OTLP_ENDPOINT": sink.endpoint,
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
    }
    off = {"OTEL_SDK_DISABLED": "true"}
    rates: dict[str, list[float]] = {"on": [], "off": []}
    try:
        for mode, env in (("on", on), ("off", off), ("on", on), ("off", off)):
            result = await run(server_url, orders, concurrency, 10, env)
            rates[mode].append(float(result["orders_per_second"]))
    finally:
        await sink.stop()
    on_rate, off_rate = statistics.mean(rates["on"]), statistics.mean(rates["off"])
    return {
        "orders_per_second_tracing_on": round(on_rate, 1),
        "orders_per_second_tracing_off": round(off_rate, 1),
        "runs": rates,
        "exports_received": sink.exports,
        "export_megabytes": round(sink.bytes / 1e6, 1),
        "throughput_cost_percent": round(100 * (1 - on_rate / off_rate), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--orders", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=16)
    arguments = parser.parse_args()
    server_url = benchmark_server_url("postgresql")
    if not server_url:
        raise SystemExit("set BENCH_DATABASE_URL (or TEST_DATABASE_URL) to a PostgreSQL server URL")
    print(json.dumps(asyncio.run(compare(server_url, arguments.orders, arguments.concurrency))))


if __name__ == "__main__":
    main()
