"""The links between signals that Grafana's provisioning promises — a log line opens its trace,
a span opens its log lines — checked against what Dozen really writes and what the collector
really hands to Loki.

Grafana, Loki and the collector cannot run here (no image registry), so each hop is taken
from its pinned version's own rules:
- the collector (0.116): deploy/otel-collector/config.yaml's filelog operators, applied to a
  real Dozen log line by an interpreter of the few operators and expressions they use (one it
  does not know fails the test);
- Loki (3.3, OTLP ingestion): the resource's service.name becomes the stream label
  service_name, the record's trace and span ids the structured metadata trace_id and
  span_id, other attributes structured metadata;
- Jaeger (1.64): a trace id is written without leading zeros (model.TraceID.String);
- Grafana (11.4): a derived field with ``matcherType: label`` takes a label or structured
  metadata by name; a span's ``${__span.traceId}`` is Jaeger's trace id.
"""

from __future__ import annotations

import io
import json
import logging
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.id_generator import IdGenerator

from shared.logging import json_handler
from shared.telemetry import resource

DEPLOY = Path(__file__).parents[1] / "deploy"
# A trace id whose high half starts with zeros: Jaeger writes it shorter than the log line does.
TRACE_ID = 0x00000A3F5C7E9B1D_4F2E6A8C0B3D5E7F
SPAN_ID = 0x1A2B3C4D5E6F7081
Entry = dict[str, Any]


class _Fixed(IdGenerator):
    def generate_trace_id(self) -> int:
        return TRACE_ID

    def generate_span_id(self) -> int:
        return SPAN_ID


def _dozen_line(service: str) -> str:
    """One line exactly as a Dozen process writes it, inside a span of its own trace."""
    out = io.StringIO()
    logger = logging.getLogger(f"signal-links.{service}")
    logger.propagate = False
    handler = json_handler(service=service, release="test", stream=out)
    logger.addHandler(handler)
    tracer = TracerProvider(resource=resource(service=service, release="test"), id_generator=_Fixed()).get_tracer(
        __name__
    )
    try:
        with tracer.start_as_current_span("POST /orders"):
            logger.warning("order accepted", extra={"order_id": "3f0c"})
    finally:
        # Each call's handler goes with it: a logger is process-wide and outlives the test.
        logger.removeHandler(handler)
    return out.getvalue()


def _runtime_file_line(line: str) -> str:
    """What Docker's json-file driver writes for one line of a container's stdout."""
    logged = line if line.endswith("\n") else line + "\n"
    return json.dumps({"log": logged, "stream": "stdout", "time": "2026-12-02T01:02:03.456789012Z"})


# --- the collector's filelog operators ------------------------------------------------------


def _path(field: str) -> tuple[str, str | None]:
    if field == "body":
        return "body", None
    if match := re.fullmatch(r'(attributes|resource)(?:\.(\w+)|\["([\w.]+)"\])', field):
        return match[1], match[2] or match[3]
    raise AssertionError(f"a field the interpreter does not know: {field}")


def _get(entry: Entry, field: str) -> Any:
    where, key = _path(field)
    return entry[where] if key is None else entry[where].get(key)


def _set(entry: Entry, field: str, value: Any) -> None:
    where, key = _path(field)
    if key is None:
        entry[where] = value
    else:
        entry[where][key] = value


def _pop(entry: Entry, field: str) -> Any:
    where, key = _path(field)
    if key is None:
        raise AssertionError("the body is never removed")
    if key not in entry[where]:
        raise KeyError(field)
    return entry[where].pop(key)


def _holds(entry: Entry, expression: str) -> bool:
    if match := re.fullmatch(r'body matches "(.*)"', expression):
        return re.search(match[1].encode().decode("unicode_escape"), entry["body"]) is not None
    if match := re.fullmatch(r"([\w.\[\]\"]+) != nil", expression):
        return _get(entry, match[1]) is not None
    raise AssertionError(f"an expression the interpreter does not know: {expression}")


def _apply(operator: dict[str, Any], entry: Entry) -> None:
    kind = operator["type"]
    if kind == "json_parser":
        parsed = json.loads(_get(entry, operator.get("parse_from", "body")))
        if not isinstance(parsed, dict):
            raise ValueError("not an object")
        entry["attributes"].update(parsed)
    elif kind == "move":
        _set(entry, operator["to"], _pop(entry, operator["from"]))
    elif kind == "remove":
        _pop(entry, operator["field"])
    elif kind == "trace_parser":
        entry["trace_id"] = _get(entry, operator["trace_id"]["parse_from"])
        entry["span_id"] = _get(entry, operator["span_id"]["parse_from"])
    else:
        raise AssertionError(f"an operator the interpreter does not know: {kind}")


def collected(file_line: str) -> Entry:
    """The log record the collector's filelog receiver makes of one line of a runtime file."""
    config = yaml.safe_load((DEPLOY / "otel-collector/config.yaml").read_text())
    entry: Entry = {"body": file_line, "attributes": {}, "resource": {}, "trace_id": None, "span_id": None}
    for operator in config["receivers"]["filelog"]["operators"]:
        if "if" in operator and not _holds(entry, operator["if"]):
            continue
        try:
            _apply(operator, entry)
        except (ValueError, KeyError):
            if not str(operator.get("on_error", "send")).startswith("send"):
                raise
    return entry


def in_loki(entry: Entry) -> tuple[dict[str, str], dict[str, str], str]:
    """(stream labels, structured metadata, line) as Loki's OTLP ingestion stores the record."""
    labels = {"service_name": entry["resource"].get("service.name", "unknown_service")}
    metadata = {key.replace(".", "_"): str(value) for key, value in entry["attributes"].items()}
    metadata |= {key: entry[key] for key in ("trace_id", "span_id") if entry[key]}
    return labels, metadata, entry["body"]


# --- the links, as provisioned -------------------------------------------------------------


def _datasources() -> dict[str, dict[str, Any]]:
    provisioned = yaml.safe_load((DEPLOY / "grafana/provisioning/datasources/datasources.yaml").read_text())
    return {source["uid"]: source for source in provisioned["datasources"]}


def _unescaped(value: str) -> str:
    # Grafana expands $VAR in provisioning files; $$ is a literal $.
    return value.replace("$$", "$")


def _jaeger_trace_id(trace_id: int) -> str:
    high, low = trace_id >> 64, trace_id & (2**64 - 1)
    return f"{high:x}{low:016x}" if high else f"{low:x}"


def _matches(query: str, labels: dict[str, str], metadata: dict[str, str]) -> bool:
    """A LogQL query of a stream selector and label filters, on one stored record."""
    selector, _, filters = query.partition("}")
    matchers = re.findall(r'(\w+)\s*(=~|=)\s*"((?:[^"\\]|\\.)*)"', selector.lstrip("{"))
    conditions = [(labels, matcher) for matcher in matchers]
    for stage in filters.split("|")[1:]:
        found = re.fullmatch(r'\s*(\w+)\s*(=~|=)\s*"((?:[^"\\]|\\.)*)"\s*', stage)
        assert found, f"a stage the checker does not know: {stage}"
        conditions.append(({**labels, **metadata}, found.groups()))
    assert conditions, query
    return all(
        (value := source.get(name)) is not None
        and (re.fullmatch(wanted, value) is not None if operator == "=~" else value == wanted)
        for source, (name, operator, wanted) in conditions
    )


def test_a_dozen_log_line_reaches_loki_as_its_message_under_its_service_with_its_trace_id() -> None:
    labels, metadata, line = in_loki(collected(_runtime_file_line(_dozen_line("orders"))))
    assert line == "order accepted"
    assert labels == {"service_name": "orders"}
    assert metadata["trace_id"] == f"{TRACE_ID:032x}"
    assert metadata["span_id"] == f"{SPAN_ID:016x}"
    assert metadata["order_id"] == "3f0c"
    assert "log" not in metadata
    assert "time" not in metadata


def test_another_containers_line_is_kept_as_written_once() -> None:
    written = "2026-12-02 01:02:03.456 UTC [1] LOG:  database system is ready to accept connections"
    labels, metadata, line = in_loki(collected(_runtime_file_line(written)))
    assert line == written + "\n"
    assert metadata == {"stream": "stdout"}
    assert labels == {"service_name": "unknown_service"}


def test_a_log_line_opens_its_trace() -> None:
    sources = _datasources()
    (derived,) = sources["loki"]["jsonData"]["derivedFields"]
    _, metadata, _ = in_loki(collected(_runtime_file_line(_dozen_line("notifier"))))
    assert derived["matcherType"] == "label"
    value = metadata[derived["matcherRegex"]]
    assert derived["datasourceUid"] in sources
    assert sources[derived["datasourceUid"]]["type"] == "jaeger"
    # The URL of an internal link is the query the target datasource runs: Jaeger looks the
    # trace up by it, with or without leading zeros (model.TraceIDFromString).
    assert _unescaped(derived["url"]) == "${__value.raw}"
    assert int(value, 16) == TRACE_ID


@pytest.mark.parametrize("service", ["gateway", "orders", "notifier"])
def test_a_span_opens_the_log_lines_of_its_trace_from_every_service(service: str) -> None:
    links = _datasources()["jaeger"]["jsonData"]["tracesToLogsV2"]
    assert links["datasourceUid"] == "loki"
    assert links["customQuery"] is True
    query = _unescaped(links["query"]).replace("${__span.traceId}", _jaeger_trace_id(TRACE_ID))
    assert "${" not in query, f"a variable Grafana has no value for here: {query}"
    labels, metadata, _ = in_loki(collected(_runtime_file_line(_dozen_line(service))))
    assert _matches(query, labels, metadata)
    other_trace = {**metadata, "trace_id": f"{TRACE_ID + 1:032x}"}
    assert not _matches(query, labels, other_trace), "the query must single out its trace"


def test_the_checker_fails_the_links_this_repository_used_to_provision() -> None:
    # Before: a regex on the line (which the collector reduces to the message) and a query
    # built from span tags Jaeger never has; both find nothing.
    labels, metadata, line = in_loki(collected(_runtime_file_line(_dozen_line("orders"))))
    assert re.search(r'"trace_id": ?"(\w+)"', line) is None
    exact = '{service_name=~".+"} | trace_id="' + _jaeger_trace_id(TRACE_ID) + '"'
    assert not _matches(exact, labels, metadata), "Jaeger's short trace id misses the line's 32 digits"
