"""`make bench`: one command, one run, everything on loopback.

1. Raw limits of the parts: aiohttp JSON hello; PostgreSQL order+outbox transactions through
   asyncpg; RabbitMQ persistent publish-with-confirm and consume-ack through aio-pika.
2. The whole pipeline under an open-loop arrival rate stepped upward until it no longer keeps
   up, then at 2x and 4x the highest rate it kept up with; twice, side by side, taking turns
   at each rate: telemetry on (every trace sampled and exported over OTLP/HTTP to a sink that
   does not decode) and off (OTEL_SDK_DISABLED=true).
Prints the tables, writes JSON and a chart (PNG) to reports/bench/, ends with the ratios and
the figures against Dozen's targets. Reports; judges nothing by time. Exits 1 only when
something is broken: a process that does not start (its own output shown), or an accepted
order never notified.

Needs BENCH_DATABASE_URL, BENCH_AMQP_URL and BENCH_REDIS_URL (or the TEST_* ones): servers
it may create databases, exchanges, queues and keys on; everything it creates is removed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import time
import uuid
from pathlib import Path
from typing import Any

import uvloop

from harness.stack import Servers
from shared.testing.backing_services import benchmark_server_url
from shared.testing.databases import scratch_databases

from . import chart, pipeline, raw, report

SERVERS = ("postgresql", "rabbitmq", "redis")
# --quick, for CI: that every part starts and every order gets through, at a low rate and
# past capacity; the figures are printed, never judged (the machine is shared and noisy).
QUICK = {"rates": "20", "step_seconds": 5.0, "overload": "30", "skip_raw": True}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="make bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", default="50,100,150,200,250,300,350,400,500,600", help="orders/s of each step")
    parser.add_argument("--step-seconds", type=float, default=10.0)
    parser.add_argument("--overload", default="2,4", help="multiples of the sustained rate to offer after the steps")
    parser.add_argument("--raw-seconds", type=float, default=5.0)
    parser.add_argument("--modes", default="on,off", help="telemetry modes to run, in order")
    parser.add_argument("--skip-raw", action="store_true")
    parser.add_argument("--quick", action="store_true", help="one low step and one overload step per mode (CI)")
    parser.add_argument("--log-level", default="INFO", help="of every Dozen process (INFO: as deployed)")
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a variable for every Dozen process, to measure a setting (GATEWAY_MAX_IN_FLIGHT=32); repeatable",
    )
    parser.add_argument("--output", type=Path, default=Path("reports/bench"))
    arguments = parser.parse_args()
    if arguments.quick:
        for name, value in QUICK.items():
            setattr(arguments, name, value)
    return arguments


def servers() -> Servers:
    urls = [benchmark_server_url(component) for component in SERVERS]
    if not all(urls):
        raise SystemExit("make bench: set BENCH_ (or TEST_) DATABASE_URL, AMQP_URL and REDIS_URL")
    return Servers(*(str(url) for url in urls))


async def raw_limits(server_url: str, amqp_url: str, seconds: float) -> dict[str, Any]:
    print("raw limits ...", flush=True)
    async with scratch_databases(server_url, [f"bench_{uuid.uuid4().hex[:8]}_raw"]) as (database_url,):
        return {
            "http_hello": await raw.http_hello(seconds=seconds, concurrency=32),
            "postgres_orders": await raw.postgres_orders(database_url, seconds=seconds, concurrency=16),
            "rabbitmq": await raw.rabbitmq_messages(amqp_url, seconds=seconds, concurrency=64),
        }


def _numbers(listed: str) -> list[float]:
    return [float(item) for item in listed.split(",") if item]


async def main() -> int:
    args = parse_args()
    attached = servers()
    results: dict[str, Any] = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "system": platform.platform()},
        "settings": {
            "rates": _numbers(args.rates),
            "step_seconds": args.step_seconds,
            "overload": _numbers(args.overload),
            "log_level": args.log_level,
            "env": args.env,
        },
        "raw": {} if args.skip_raw else await raw_limits(attached.postgres_url, attached.amqp_url, args.raw_seconds),
        "pipeline": {},
    }
    print(f"pipeline, telemetry {args.modes} ...", flush=True)
    results["pipeline"] = await pipeline.stepped(
        attached,
        modes=args.modes.split(","),
        rates=_numbers(args.rates),
        step_seconds=args.step_seconds,
        overload=_numbers(args.overload),
        log_level=args.log_level,
        env=dict(variable.split("=", 1) for variable in args.env),
    )
    runs = results["pipeline"]
    results["ratios"] = report.ratios(results["raw"], runs)
    results["targets"] = report.against_targets(runs, results["ratios"])

    print()
    if results["raw"]:
        print(report.raw_lines(results["raw"]))
    for mode, run in runs.items():
        print()
        print(report.table(f"pipeline, telemetry {mode} (latencies in ms)", run["steps"]))
        print(report.answers_table(run["steps"]))
        print(report.cpu_table(run["steps"]))
        if run["overload"]:
            print(report.table(f"past capacity, telemetry {mode}", run["overload"], report.OVERLOAD_COLUMNS))
            print(report.answers_table(run["overload"]))
        print(f"idle CPU ms/s: {run['idle_cpu_ms_per_second']}")
    print()
    print("ratios", json.dumps(results["ratios"], indent=2))
    print()
    print(report.targets_table(results["targets"]))
    args.output.mkdir(parents=True, exist_ok=True)
    stem = args.output / f"bench-{results['when'].replace(':', '')}"
    stem.with_suffix(".json").write_text(json.dumps(results, indent=2))
    print(f"\nwritten: {stem.with_suffix('.json')}")
    print(f"chart:   {chart.draw(results, stem.with_suffix('.png'))}")
    lost = sum(step["lost"] for run in runs.values() for step in [*run["steps"], *run["overload"]])
    if lost:
        print(f"\nmake bench: {lost} accepted orders were never notified", flush=True)
        return 1
    return 0


async def interruptible() -> int:
    # SIGTERM or Ctrl-C cancels the run, so every started process is stopped and every
    # database, exchange and queue removed on the way out, as after a normal run.
    task = asyncio.current_task()
    if task is None:
        raise RuntimeError("interruptible() must run as a task")
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, task.cancel)
    return await main()


if __name__ == "__main__":
    try:
        # uvloop, as every Dozen process runs: the load generator's own cost per request is
        # taken from the system it measures, and uvloop halves it here.
        raise SystemExit(uvloop.run(interruptible()))
    except asyncio.CancelledError:
        raise SystemExit("make bench: interrupted; everything it started was stopped") from None
