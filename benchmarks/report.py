"""The benchmark's tables, its ratios, and its figures against the targets Dozen aims for."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .pipeline import kept_up

COLUMNS = [
    ("offered/s", "target_per_second"),
    ("kept up", "kept_up"),
    ("accepted/s", "accepted_per_second"),
    ("not 201", None),
    ("API p50", "api_p50_ms"),
    ("API p99", "api_p99_ms"),
    ("API p99.9", "api_p999_ms"),
    ("notified p50", "notified_p50_ms"),
    ("notified p99", "notified_p99_ms"),
    ("lost", "lost"),
    ("CPU ms/order", "cpu_ms_per_order"),
    ("harness ms", "harness_cpu_ms_per_order"),
]
OVERLOAD_COLUMNS = [
    ("factor", "overload_factor"),
    ("offered/s", "target_per_second"),
    ("goodput/s", "accepted_per_second"),
    ("refused", "refused"),
    ("no Retry-After", "refused_without_retry_after"),
    ("refusal p99", "refusal_p99_ms"),
    ("504", "gateway_timeouts"),
    ("limited locally", "rate_limit_local"),
    ("SYNs dropped", "listen_drops"),
    ("API p99", "api_p99_ms"),
    ("notified p99", "notified_p99_ms"),
    ("lost", "lost"),
]

Runs = dict[str, dict[str, Any]]


def sustained(steps: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The highest step the pipeline kept up with."""
    return max((step for step in steps if kept_up(step)), key=lambda step: step["target_per_second"], default=None)


def _at(runs: Runs, mode: str, rate: float) -> dict[str, Any] | None:
    steps = runs.get(mode, {}).get("steps", [])
    return next((step for step in steps if step["target_per_second"] == rate), None)


def ratios(raw: dict[str, Any], runs: Runs) -> dict[str, Any]:
    found: dict[str, Any] = {}
    best = {mode: sustained(run["steps"]) for mode, run in runs.items()}
    on = best.get("on")
    if on and raw:
        rate = on["accepted_per_second"]
        found["pipeline_on_over_http_hello"] = round(rate / raw["http_hello"]["per_second"], 3)
        found["pipeline_on_over_postgres_orders"] = round(rate / raw["postgres_orders"]["per_second"], 3)
        found["pipeline_on_over_rabbitmq_publish"] = round(rate / raw["rabbitmq"]["publish"]["per_second"], 3)
    if "on" in runs and "off" in runs:
        per_step = {}
        for step in runs["on"]["steps"]:
            other = _at(runs, "off", step["target_per_second"])
            if other and other["cpu_ms_per_order"]:
                per_step[str(step["target_per_second"])] = round(
                    step["cpu_ms_per_order"] / other["cpu_ms_per_order"], 3
                )
        found["telemetry_on_over_off_cpu_per_order"] = per_step
    found["sustained"] = {mode: step and step["target_per_second"] for mode, step in best.items()}
    return found


@dataclass(frozen=True)
class Target:
    """One of the figures Dozen aims for, and how to read it off a run (in words)."""

    name: str
    goal: str
    figure: Callable[[Runs, dict[str, Any]], str]


def _sustained(mode: str) -> Callable[[Runs, dict[str, Any]], str]:
    return lambda runs, found: str(found["sustained"].get(mode, "not run"))


def _at_200(key: Callable[[dict[str, Any]], str]) -> Callable[[Runs, dict[str, Any]], str]:
    def figure(runs: Runs, found: dict[str, Any]) -> str:
        step = _at(runs, "off", 200.0)
        return key(step) if step else "no step at 200/s"

    return figure


def _telemetry_ratio(runs: Runs, found: dict[str, Any]) -> str:
    return str(found.get("telemetry_on_over_off_cpu_per_order", {}).get("200.0", "no step at 200/s in both modes"))


def _overloaded(key: Callable[[dict[str, Any], dict[str, Any] | None], str]) -> Callable[[Runs, dict[str, Any]], str]:
    def figure(runs: Runs, found: dict[str, Any]) -> str:
        steps = [(mode, step) for mode, run in runs.items() for step in run.get("overload", [])]
        if not steps:
            return "not run"
        return ", ".join(
            f"{mode} {step['overload_factor']:g}x: {key(step, sustained(runs[mode]['steps']))}" for mode, step in steps
        )

    return figure


def _goodput_share(step: dict[str, Any], kept: dict[str, Any] | None) -> str:
    if kept is None:
        return "no sustained rate"
    return f"{step['accepted_per_second'] / kept['accepted_per_second']:.2f}"


TARGETS = [
    Target("sustained orders/s, telemetry off", ">= 400", _sustained("off")),
    Target("sustained orders/s, telemetry on", ">= 250", _sustained("on")),
    Target("CPU ms per order at 200/s, telemetry off", "<= 5", _at_200(lambda step: str(step["cpu_ms_per_order"]))),
    Target("telemetry on / off, CPU per order at 200/s", "<= 1.25", _telemetry_ratio),
    Target(
        "API p99 / notified p99 at 200/s, telemetry off (ms)",
        "<= 50 / <= 250",
        _at_200(lambda step: f"{step['api_p99_ms']} / {step['notified_p99_ms']}"),
    ),
    Target(
        "past capacity: 504s, refusals without Retry-After",
        "0, 0",
        _overloaded(lambda step, _: f"{step['gateway_timeouts']}, {step['refused_without_retry_after']}"),
    ),
    Target("past capacity: refusal p99 (ms)", "<= 100", _overloaded(lambda step, _: str(step["refusal_p99_ms"]))),
    Target("past capacity: goodput / sustained", ">= 0.90", _overloaded(_goodput_share)),
]


def against_targets(runs: Runs, found_ratios: dict[str, Any]) -> dict[str, str]:
    """Each target's figure from this run, in words (one this run did not measure says so)."""
    return {target.name: target.figure(runs, found_ratios) for target in TARGETS}


def _cell(step: dict[str, Any], key: str | None) -> str:
    value = step["attempts"] - step["accepted"] if key is None else step.get(key)
    return "-" if value is None else str(value)


def table(title: str, steps: list[dict[str, Any]], columns: Sequence[tuple[str, str | None]] = COLUMNS) -> str:
    width = max(12, *(len(name) for name, _ in columns))
    header = " | ".join(f"{name:>{width}}" for name, _ in columns)
    lines = [title, header, "-" * len(header)]
    lines += [" | ".join(f"{_cell(step, key):>{width}}" for _, key in columns) for step in steps]
    return "\n".join(lines)


def answers_table(steps: list[dict[str, Any]]) -> str:
    lines = ["answers by status (or the client's error)"]
    lines += [f"  {step['target_per_second']:>7.0f}/s: {step['answers']}" for step in steps]
    return "\n".join(lines)


def cpu_table(steps: list[dict[str, Any]]) -> str:
    if not steps:
        return ""
    groups = list(steps[0]["cpu_ms_per_order_by_group"])
    header = f"{'offered/s':>9} | " + " | ".join(f"{group:>13}" for group in groups)
    lines = ["CPU ms per accepted order, by process", header, "-" * len(header)]
    for step in steps:
        by_group = step["cpu_ms_per_order_by_group"]
        lines.append(
            f"{step['target_per_second']:>9} | " + " | ".join(f"{by_group.get(group, 0):>13}" for group in groups)
        )
    return "\n".join(lines)


def targets_table(figures: dict[str, str]) -> str:
    lines = ["against the targets", f"{'':<58} {'target':>16}   this run"]
    lines += [f"{target.name:<58} {target.goal:>16}   {figures[target.name]}" for target in TARGETS]
    return "\n".join(lines)


def raw_lines(raw: dict[str, Any]) -> str:
    hello, postgres, rabbit = raw["http_hello"], raw["postgres_orders"], raw["rabbitmq"]
    return "\n".join(
        [
            "raw limits (each part alone, closed loop, client on the same 2 cores)",
            f"  aiohttp JSON hello, one process   {hello['per_second']:>9} req/s   p99 {hello.get('p99_ms')} ms"
            f"   server CPU {hello['server_cpu_ms_per_request']} ms/req",
            f"  PostgreSQL order+outbox (asyncpg) {postgres['per_second']:>9} tx/s    p99 {postgres.get('p99_ms')} ms",
            f"  RabbitMQ publish+confirm          {rabbit['publish']['per_second']:>9} msg/s   p99"
            f" {rabbit['publish'].get('p99_ms')} ms",
            f"  RabbitMQ consume+ack              {rabbit['consume']['per_second']:>9} msg/s",
        ]
    )
