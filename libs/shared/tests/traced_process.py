"""A process that traces one span the way every Dozen process sets tracing up, then exits."""

from __future__ import annotations

import sys

from opentelemetry import trace

from shared.config import ConfigError, exit_for_bad_config
from shared.telemetry import configuration_problems, tracing


def main() -> None:
    problems = configuration_problems()
    if problems:
        exit_for_bad_config(ConfigError(problems), service="traced")
    with tracing(service="traced", release="r-1"), trace.get_tracer(__name__).start_as_current_span("hello"):
        pass
    print("done", file=sys.stdout)


if __name__ == "__main__":
    main()
