"""The whole pipeline under an open-loop arrival rate, stepped up until it no longer keeps up,
then pushed past that (at multiples of the sustained rate) to see how it refuses.

Every process type runs as its own OS process (harness.stack, the same start-up as the
end-to-end tests) on fresh databases and private exchanges and queues. Orders enter through
the gateway at a fixed rate per step, from customers each within the gateway's default rate
limit; each step then waits until every accepted order is notified, and reports what the
servers themselves stamped (created_at → notified_at), how every request was answered, and
the CPU every process burned — Dozen's, PostgreSQL's and RabbitMQ's — per accepted order. The
harness (this process: load generator and sinks) is measured too, apart: it shares the cores.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
import asyncpg

from harness.api import ORDER_BODY, ORDERS_PATH
from harness.load import Answer, Run, open_loop
from harness.stack import Servers, Stack, running_stack
from shared.testing.otlp import OtlpSink

from . import cpu
from .http import HttpClient
from .load import percentile
from .netstat import listen_drops
from .smtp_sink import CountingSmtpSink

BODY = json.dumps(ORDER_BODY).encode()
# Enough customers that even the highest step asks each for less than the gateway's default
# limit (20/s): the limiter is checked on every request, as deployed, and refuses none.
CUSTOMERS = 200
NOTIFIED_TIMEOUT_SECONDS = 120
IDLE_SECONDS = 5.0
# A client that waits longer than the gateway itself (5 s upstream): any 504 is the gateway's.
CLIENT_TIMEOUT_SECONDS = 30.0
MAX_CONNECTIONS = 4000
# A pipeline that keeps up has no backlog growing behind the API: notifications follow
# within a second. Past that, orders are accepted faster than they are carried through.
KEEPING_UP_NOTIFIED_P99_MS = 1000
REFUSALS = (429, 503)
MISSES_TO_STOP = 2
_LIMITED_LOCALLY = "dozen_gateway_rate_limit_local_total"


def ms(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def kept_up(step: dict[str, Any]) -> bool:
    """No request failed or was refused, the accepted rate within 5 % of the offered one, and
    every order notified within a second at the 99th percentile."""
    return bool(
        step["accepted"] == step["attempts"]
        and step["lost"] == 0
        and step["accepted_per_second"] >= 0.95 * step["target_per_second"]
        and (step["notified_p99_ms"] or 0) <= KEEPING_UP_NOTIFIED_P99_MS
    )


@dataclass
class Bench:
    """A running Dozen, and what drives and measures it."""

    stack: Stack
    client: HttpClient
    tokens: list[str]
    orders: asyncpg.Pool
    groups: list[cpu.Group]

    async def place(self, index: int) -> Answer:
        headers = {
            "Content-Type": "application/json",
            "Authorization": f"Bearer {self.tokens[index % len(self.tokens)]}",
            # A fresh key per attempt: every request is a new order.
            "Idempotency-Key": str(uuid.uuid4()),
        }
        return await self.client.send(self.client.request_bytes("POST", ORDERS_PATH, headers, BODY))

    async def idle(self) -> dict[str, float]:
        """What the processes burn with no orders at all (samplers, heartbeats, polls), per second."""
        before = cpu.snapshot(self.groups)
        await asyncio.sleep(IDLE_SECONDS)  # a measurement window, not a wait for a condition
        return {
            group: round(seconds * 1000 / IDLE_SECONDS, 1)
            for group, seconds in cpu.spent(before, cpu.snapshot(self.groups)).items()
        }

    async def step(self, rate: float, seconds: float) -> dict[str, Any]:
        local_before = await self._gateway_metric(_LIMITED_LOCALLY)
        before, drops_before = cpu.snapshot(self.groups), listen_drops()
        run = await open_loop(self.place, rate=rate, seconds=seconds)
        drops = listen_drops() - drops_before
        order_ids = [json.loads(attempt.body)["id"] for attempt in run.answered(201)]
        notified_ms = await self._notified(order_ids)
        used = cpu.spent(before, cpu.snapshot(self.groups))
        local = await self._gateway_metric(_LIMITED_LOCALLY) - local_before
        return _figures(rate, run, notified_ms, used, rate_limit_local=int(local)) | {"listen_drops": drops}

    async def _notified(self, order_ids: list[str]) -> list[float]:
        """Accepted → notified of each order (ms), once all are notified or the deadline passes."""
        deadline = time.monotonic() + NOTIFIED_TIMEOUT_SECONDS
        while True:
            rows = await self.orders.fetch(
                "SELECT EXTRACT(EPOCH FROM notified_at - created_at) * 1000 AS ms FROM orders"
                " WHERE id = ANY($1::uuid[]) AND notified_at IS NOT NULL",
                order_ids,
            )
            if len(rows) == len(order_ids) or time.monotonic() > deadline:
                return [float(row["ms"]) for row in rows]
            await asyncio.sleep(0.2)  # polling the database for a condition, with a deadline

    async def _gateway_metric(self, sample: str) -> float:
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"http://127.0.0.1:{self.stack.management_ports['gateway']}/metrics") as answer,
        ):
            text = await answer.text()
        return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(sample))


def answered(rate: float, run: Run) -> dict[str, Any]:
    """How a run's requests were answered: goodput, latencies, refusals, timeouts."""
    accepted = run.answered(201)
    refused = run.answered(*REFUSALS)
    return {
        "target_per_second": rate,
        "attempts": len(run.attempts),
        "accepted": len(accepted),
        "accepted_per_second": round(len(accepted) / run.seconds, 1),
        "answers": run.by_outcome(),
        "api_p50_ms": ms(percentile([attempt.latency_ms for attempt in accepted], 0.50)),
        "api_p99_ms": ms(percentile([attempt.latency_ms for attempt in accepted], 0.99)),
        "api_p999_ms": ms(percentile([attempt.latency_ms for attempt in accepted], 0.999)),
        "refused": len(refused),
        "refused_without_retry_after": sum(1 for attempt in refused if not attempt.retry_after),
        "refusal_p99_ms": ms(percentile([attempt.latency_ms for attempt in refused], 0.99)),
        "gateway_timeouts": len(run.answered(504)),
    }


def _figures(
    rate: float, run: Run, notified_ms: list[float], cpu_seconds: dict[str, float], *, rate_limit_local: int
) -> dict[str, Any]:
    figures = answered(rate, run)
    harness = cpu_seconds.pop("harness", 0.0)
    per_order = max(figures["accepted"], 1)
    return figures | {
        "rate_limit_local": rate_limit_local,
        "notified": len(notified_ms),
        "lost": figures["accepted"] - len(notified_ms),
        "notified_p50_ms": ms(percentile(notified_ms, 0.50)),
        "notified_p99_ms": ms(percentile(notified_ms, 0.99)),
        "cpu_ms_per_order": round(sum(cpu_seconds.values()) * 1000 / per_order, 3),
        "cpu_ms_per_order_by_group": {
            group: round(seconds * 1000 / per_order, 3) for group, seconds in cpu_seconds.items()
        },
        "harness_cpu_ms_per_order": round(harness * 1000 / per_order, 3),
    }


@asynccontextmanager
async def running_bench(
    servers: Servers, *, telemetry: bool, log_level: str, env: dict[str, str]
) -> AsyncIterator[Bench]:
    smtp, traces = CountingSmtpSink(), OtlpSink()
    await smtp.start()
    await traces.start()
    environment = (
        {"OTEL_EXPORTER_OTLP_ENDPOINT": traces.endpoint, "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}
        if telemetry
        else {"OTEL_SDK_DISABLED": "true"}
    )
    environment |= {f"{prefix}_LOG_LEVEL": log_level for prefix in ("GATEWAY", "ORDERS", "NOTIFIER")}
    environment |= env
    try:
        async with running_stack(servers, label="bench", smtp=smtp, extra_env=environment) as stack:
            tokens = await stack.tokens([f"bench-{number}" for number in range(CUSTOMERS)])
            client = HttpClient(
                "127.0.0.1",
                stack.ports["gateway"],
                max_connections=MAX_CONNECTIONS,
                timeout_seconds=CLIENT_TIMEOUT_SECONDS,
            )
            groups = [cpu.pids(name, [process.pid]) for name, process in stack.processes.items()]
            groups += [cpu.postgres(), cpu.rabbitmq(), cpu.pids("harness", [os.getpid()])]
            orders = await asyncpg.create_pool(stack.orders_database_url, min_size=1, max_size=2)
            try:
                yield Bench(stack, client, tokens, orders, groups)
            finally:
                client.close()
                await orders.close()
    finally:
        await smtp.stop()
        await traces.stop()


async def stepped(
    servers: Servers,
    *,
    modes: list[str],
    rates: list[float],
    step_seconds: float,
    overload: list[float],
    log_level: str,
    env: dict[str, str],
) -> dict[str, dict[str, Any]]:
    """Per telemetry mode ("on", "off"): steps at ``rates`` until two in a row are not kept up
    with (one alone may be the machine's hiccup: the next is tried), then steps at ``overload``
    times the highest rate kept up with (or, when none was, the first).

    Every mode has a stack of its own, all running at once, and the modes take turns at each
    rate: this machine's speed drifts by tens of percent over minutes, and what telemetry costs
    is only measured fairly by steps taken side by side, not one mode's run after the other's.
    """
    async with AsyncExitStack() as running:
        benches = {
            mode: await running.enter_async_context(
                running_bench(servers, telemetry=mode == "on", log_level=log_level, env=env)
            )
            for mode in modes
        }
        runs: dict[str, dict[str, Any]] = {}
        for mode, bench in benches.items():
            runs[mode] = {"idle_cpu_ms_per_second": await bench.idle(), "steps": [], "overload": []}
            print(f"  {mode:>3} idle CPU ms/s: {runs[mode]['idle_cpu_ms_per_second']}", flush=True)
        missed = dict.fromkeys(modes, 0)  # steps in a row not kept up with
        for rate in rates:
            for mode in [mode for mode in modes if missed[mode] < MISSES_TO_STOP]:
                step = await benches[mode].step(rate, step_seconds)
                step["kept_up"] = kept_up(step)
                runs[mode]["steps"].append(step)
                print(f"  {mode:>3} {rate:>6.0f}/s: {step}", flush=True)
                missed[mode] = 0 if kept_up(step) else missed[mode] + 1
                if missed[mode] == MISSES_TO_STOP:
                    print(f"  {mode:>3} not kept up at {rate:.0f}/s, twice in a row: higher steps skipped", flush=True)
        for factor in overload:
            for mode in modes:
                sustained = max(
                    (step["target_per_second"] for step in runs[mode]["steps"] if kept_up(step)), default=rates[0]
                )
                step = await benches[mode].step(sustained * factor, step_seconds) | {"overload_factor": factor}
                runs[mode]["overload"].append(step)
                print(f"  {mode:>3} {factor:g}x {sustained * factor:>6.0f}/s: {step}", flush=True)
        return runs
