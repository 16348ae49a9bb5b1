"""The benchmark's table and its ratios."""

from __future__ import annotations

from typing import Any

COLUMNS = [
    ("target/s", "target_per_second"),
    ("accepted/s", "accepted_per_second"),
    ("errors", "errors"),
    ("API p50", "api_p50_ms"),
    ("API p99", "api_p99_ms"),
    ("API p99.9", "api_p999_ms"),
    ("notified p50", "notified_p50_ms"),
    ("notified p99", "notified_p99_ms"),
    ("CPU ms/order", "cpu_ms_per_order"),
]


# A pipeline that keeps up has no backlog growing behind the API: notifications follow
# within a second. Past that, orders are accepted faster than they are carried through.
KEEPING_UP_NOTIFIED_P99_MS = 1000


def sustained(steps: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The highest step the pipeline kept up with: no errors, the accepted rate within 5 % of
    the offered one, and every order notified within a second at the 99th percentile."""
    kept_up = [
        step
        for step in steps
        if step["errors"] == 0
        and step["notified"] == step["accepted"]
        and step["accepted_per_second"] >= 0.95 * step["target_per_second"]
        and (step["notified_p99_ms"] or 0) <= KEEPING_UP_NOTIFIED_P99_MS
    ]
    return max(kept_up, key=lambda step: step["target_per_second"], default=None)


def ratios(raw: dict[str, Any], pipeline: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    best = {mode: sustained(steps) for mode, steps in pipeline.items()}
    on = best.get("on")
    if on and raw:
        rate = on["accepted_per_second"]
        found["pipeline_on_over_http_hello"] = round(rate / raw["http_hello"]["per_second"], 3)
        found["pipeline_on_over_postgres_orders"] = round(rate / raw["postgres_orders"]["per_second"], 3)
        found["pipeline_on_over_rabbitmq_publish"] = round(rate / raw["rabbitmq"]["publish"]["per_second"], 3)
    if "on" in pipeline and "off" in pipeline:
        off_steps = {step["target_per_second"]: step for step in pipeline["off"]}
        per_step = {}
        for step in pipeline["on"]:
            other = off_steps.get(step["target_per_second"])
            if other and other["cpu_ms_per_order"]:
                per_step[str(step["target_per_second"])] = round(
                    step["cpu_ms_per_order"] / other["cpu_ms_per_order"], 3
                )
        found["telemetry_on_over_off_cpu_per_order"] = per_step
        on_best, off_best = best.get("on"), best.get("off")
        if on_best and off_best:
            found["telemetry_on_over_off_sustained_rate"] = round(
                on_best["accepted_per_second"] / off_best["accepted_per_second"], 3
            )
    found["sustained"] = {mode: step and step["target_per_second"] for mode, step in best.items()}
    return found


def table(title: str, steps: list[dict[str, Any]]) -> str:
    header = " | ".join(f"{name:>12}" for name, _ in COLUMNS)
    lines = [title, header, "-" * len(header)]
    for step in steps:
        cells = []
        for _, key in COLUMNS:
            value = step.get(key)
            cells.append(f"{'-' if value is None else value:>12}")
        lines.append(" | ".join(cells))
    return "\n".join(lines)


def cpu_table(steps: list[dict[str, Any]]) -> str:
    if not steps:
        return ""
    groups = list(steps[0]["cpu_ms_per_order_by_group"])
    header = f"{'target/s':>9} | " + " | ".join(f"{group:>13}" for group in groups)
    lines = ["CPU ms per order, by process", header, "-" * len(header)]
    for step in steps:
        by_group = step["cpu_ms_per_order_by_group"]
        lines.append(
            f"{step['target_per_second']:>9} | " + " | ".join(f"{by_group.get(group, 0):>13}" for group in groups)
        )
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
