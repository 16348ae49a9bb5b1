"""Dozen's Grafana dashboards, as code (grafanalib). `make dashboards` writes dashboards/*.json.

Every panel's PromQL must return a series on a running system: tests/test_dashboards.py
runs each expression against a real Prometheus scraping a real Dozen and fails on any
that comes back empty. Ratios therefore fall back to zero instead of to nothing.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from grafanalib._gen import DashboardEncoder
from grafanalib.core import Dashboard, GridPos, Target, TimeSeries

PROMETHEUS = {"type": "prometheus", "uid": "prometheus"}
WINDOW = "$__rate_interval"
NOT_PROBES = 'route!~"/healthz|/readyz|/metrics"'
HTTP = "dozen_http_server_request_duration_seconds"


class ExemplarTarget(Target):  # type: ignore[misc]
    """A Prometheus target that also asks for exemplars (links from points to traces)."""

    def to_json_data(self) -> dict[str, Any]:
        data: dict[str, Any] = super().to_json_data()
        data["exemplar"] = True
        return data


def target(expr: str, legend: str, ref: str = "A", *, exemplar: bool = False) -> Target:
    kind = ExemplarTarget if exemplar else Target
    return kind(expr=expr, legendFormat=legend, refId=ref, datasource=PROMETHEUS)


def panel(
    title: str, targets: list[Target], position: int, *, unit: str = "short", description: str = ""
) -> TimeSeries:
    row, column = divmod(position, 2)
    return TimeSeries(
        title=title,
        description=description,
        dataSource=PROMETHEUS,
        targets=targets,
        unit=unit,
        gridPos=GridPos(h=8, w=12, x=12 * column, y=8 * row),
    )


def quantile(q: float, metric: str, by: str, selector: str = "") -> str:
    return f"histogram_quantile({q}, sum by ({by}, le) (rate({metric}_bucket{{{selector}}}[{WINDOW}])))"


def ratio_or_zero(numerator: str, denominator: str) -> str:
    return f"({numerator} or {denominator} * 0) / {denominator}"


def overview() -> Dashboard:
    requests = f"sum by (job) (rate({HTTP}_count{{{NOT_PROBES}}}[{WINDOW}]))"
    errors = f'sum by (job) (rate({HTTP}_count{{{NOT_PROBES}, status="5xx"}}[{WINDOW}]))'
    return Dashboard(
        title="Dozen overview",
        uid="dozen-overview",
        tags=["dozen"],
        panels=[
            panel("Requests per second, by process", [target(requests, "{{job}}")], 0, unit="reqps"),
            panel(
                "Error ratio (5xx), by process",
                [target(ratio_or_zero(errors, requests), "{{job}}")],
                1,
                unit="percentunit",
            ),
            panel(
                "Latency, by process",
                [
                    target(quantile(0.5, HTTP, "job", NOT_PROBES), "p50 {{job}}"),
                    target(quantile(0.99, HTTP, "job", NOT_PROBES), "p99 {{job}}", "B"),
                ],
                2,
                unit="s",
            ),
            panel(
                "Orders accepted per second",
                [
                    target(
                        f'sum(rate({HTTP}_count{{job="orders-web", route="/orders", method="POST", status="2xx"}}'
                        f"[{WINDOW}]))",
                        "accepted",
                    )
                ],
                3,
                unit="reqps",
            ),
            panel(
                "Order accepted to notified",
                [
                    target(quantile(0.5, "dozen_order_accepted_to_notified_seconds", "job"), "p50", exemplar=True),
                    target(
                        quantile(0.99, "dozen_order_accepted_to_notified_seconds", "job"), "p99", "B", exemplar=True
                    ),
                ],
                4,
                unit="s",
                description="Exemplars link points to the order's trace.",
            ),
            panel(
                "Gateway calls to orders, by route and outcome",
                [
                    target(
                        f"sum by (route, status) (rate(dozen_http_client_request_duration_seconds_count[{WINDOW}]))",
                        "{{route}} {{status}}",
                    )
                ],
                5,
                unit="reqps",
            ),
            panel(
                "Refused past capacity (503 at the door), by process and reason",
                [
                    target(
                        f"sum by (job, reason) (rate(dozen_http_server_refused_total[{WINDOW}]))",
                        "{{job}} {{reason}}",
                    ),
                    target(
                        f"sum(rate(dozen_gateway_rate_limit_local_total[{WINDOW}]))",
                        "gateway: limited locally (Redis did not answer)",
                        "B",
                    ),
                ],
                6,
                unit="reqps",
                description="Past capacity Dozen refuses at once with Retry-After rather than queue into timeouts.",
            ),
            panel(
                "Requests in flight, and the bound on them",
                [
                    target("max by (job) (dozen_http_server_requests_in_flight)", "in flight {{job}}"),
                    target("max by (job) (dozen_http_server_in_flight_limit)", "bound {{job}}", "B"),
                ],
                7,
                description="The gateway's bound follows latency: it admits fewer while answers are slow.",
            ),
        ],
    ).auto_panel_ids()


def messaging() -> Dashboard:
    return Dashboard(
        title="Messaging pipeline",
        uid="dozen-messaging",
        tags=["dozen"],
        panels=[
            panel(
                "Outbox backlog",
                [
                    target("max(dozen_outbox_backlog)", "unpublished rows"),
                    # Above 0 only after the broker refused rows past the limit: `orders outbox unpark`.
                    target("max(dozen_outbox_parked)", "parked rows"),
                ],
                0,
            ),
            panel(
                "Oldest unpublished outbox row",
                [target("max(dozen_outbox_oldest_unpublished_age_seconds)", "age")],
                1,
                unit="s",
            ),
            panel("Queue depth", [target('max by (queue) (dozen_queue_messages{queue!~".*[.]dlq"})', "{{queue}}")], 2),
            panel(
                "Dead-letter queues",
                [target('max by (queue) (dozen_queue_messages{queue=~".*[.]dlq"})', "{{queue}}")],
                3,
            ),
            panel(
                "Consumer throughput, by outcome",
                [
                    target(
                        f"sum by (queue, outcome) (rate(dozen_messages_handled_total[{WINDOW}]))",
                        "{{queue}} {{outcome}}",
                    )
                ],
                4,
                unit="ops",
            ),
            panel(
                "Retries and failures",
                [
                    target(f"sum by (queue) (rate(dozen_message_retries_total[{WINDOW}]))", "retried {{queue}}"),
                    target(f"sum by (queue) (rate(dozen_message_failures_total[{WINDOW}]))", "failed {{queue}}", "B"),
                    target(
                        f"sum by (event_type) (rate(dozen_inbox_duplicates_total[{WINDOW}]))",
                        "redelivered {{event_type}}",
                        "C",
                    ),
                ],
                5,
                unit="ops",
            ),
            panel(
                "Handling duration p99",
                [target(quantile(0.99, "dozen_message_handling_seconds", "queue"), "{{queue}}")],
                6,
                unit="s",
            ),
            panel(
                "Publish confirm latency p99, and failures",
                [
                    target(quantile(0.99, "dozen_publish_confirm_seconds", "exchange"), "p99 {{exchange}}"),
                    target(
                        f"sum by (exchange, reason) (rate(dozen_publish_failures_total[{WINDOW}]))",
                        "failed {{exchange}} {{reason}}",
                        "B",
                    ),
                ],
                7,
                unit="s",
            ),
            panel(
                "Relay and notifier throughput",
                [
                    target(f"sum(rate(dozen_outbox_published_total[{WINDOW}]))", "outbox rows published"),
                    target(f"sum(rate(dozen_emails_sent_total[{WINDOW}]))", "emails sent", "B"),
                ],
                8,
                unit="ops",
            ),
            panel(
                "Messages per batch, by queue",
                [
                    target(quantile(0.5, "dozen_consumer_batch_size", "queue"), "p50 {{queue}}"),
                    target(quantile(0.95, "dozen_consumer_batch_size", "queue"), "p95 {{queue}}", "B"),
                ],
                9,
                description="One transaction and one ack frame per batch: batches grow with the load.",
            ),
        ],
    ).auto_panel_ids()


def runtime() -> Dashboard:
    return Dashboard(
        title="Runtime",
        uid="dozen-runtime",
        tags=["dozen"],
        panels=[
            panel(
                "CPU, by process",
                [target(f"sum by (job) (rate(process_cpu_seconds_total[{WINDOW}]))", "{{job}}")],
                0,
                unit="percentunit",
            ),
            panel(
                "Resident memory, by process",
                [target("max by (job) (process_resident_memory_bytes)", "{{job}}")],
                1,
                unit="bytes",
            ),
            panel(
                "Garbage collections, by process",
                [target(f"sum by (job) (rate(python_gc_collections_total[{WINDOW}]))", "{{job}}")],
                2,
                unit="ops",
            ),
            panel(
                "Event-loop lag p99, by process",
                [target(quantile(0.99, "dozen_event_loop_lag_seconds", "job"), "{{job}}")],
                3,
                unit="s",
            ),
            panel(
                "Database connections in use",
                [target('max by (job) (dozen_db_pool_connections{state="in_use"})', "{{job}}")],
                4,
            ),
            panel(
                "Builds running",
                [
                    target(
                        "sum by (service, version, release) (dozen_build_info)", "{{service}} {{version}} {{release}}"
                    )
                ],
                5,
            ),
        ],
    ).auto_panel_ids()


DASHBOARDS = {"overview": overview, "messaging": messaging, "runtime": runtime}


def render(name: str) -> str:
    return json.dumps(DASHBOARDS[name]().to_json_data(), cls=DashboardEncoder, indent=2, sort_keys=True) + "\n"


def main() -> None:
    folder = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).with_name("dashboards")
    for name in DASHBOARDS:
        (folder / f"{name}.json").write_text(render(name))


if __name__ == "__main__":
    main()
