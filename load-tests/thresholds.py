"""Pass or fail a headless run: exit 1 if the failure ratio or the API's p99 exceed the limits.

LOAD_MAX_FAILURE_RATIO (default 0.01) covers every request, PIPELINE included (an order
not notified in time is a failure); LOAD_MAX_P99_MS (default 500) covers the HTTP requests
only, since the pipeline's latency is a different kind of number.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from locust import events
from locust.env import Environment
from locust.stats import StatsEntry

PIPELINE = "PIPELINE"
log = logging.getLogger("thresholds")


def api_stats(environment: Environment) -> StatsEntry:
    api = StatsEntry(environment.stats, "API", "", use_response_times_cache=False)
    for entry in environment.stats.entries.values():
        if entry.method != PIPELINE:
            api.extend(entry)
    return api


def enforce_thresholds(environment: Environment, **_: Any) -> None:
    max_failure_ratio = float(os.environ.get("LOAD_MAX_FAILURE_RATIO", "0.01"))
    max_p99_ms = float(os.environ.get("LOAD_MAX_P99_MS", "500"))
    failure_ratio = environment.stats.total.fail_ratio
    p99 = api_stats(environment).get_response_time_percentile(0.99) or 0
    log.info(
        "failure ratio %.4f (limit %.4f), API p99 %.0f ms (limit %.0f)",
        failure_ratio,
        max_failure_ratio,
        p99,
        max_p99_ms,
    )
    if environment.stats.total.num_requests == 0:
        log.error("FAIL: no request was made")
        environment.process_exit_code = 1
    elif failure_ratio > max_failure_ratio:
        log.error("FAIL: failure ratio %.4f > %.4f", failure_ratio, max_failure_ratio)
        environment.process_exit_code = 1
    elif p99 > max_p99_ms:
        log.error("FAIL: API p99 %.0f ms > %.0f ms", p99, max_p99_ms)
        environment.process_exit_code = 1


# locust's event hooks are untyped; registering imperatively keeps this function typed.
events.quitting.add_listener(enforce_thresholds)  # type: ignore[no-untyped-call]
