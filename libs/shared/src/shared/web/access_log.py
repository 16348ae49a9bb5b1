"""One structured line per HTTP request; probes and scrapes only at DEBUG."""

from __future__ import annotations

import logging

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

# Kubelet probes and Prometheus scrapes arrive every few seconds and tell nobody anything.
QUIET_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


def route_template(request: web.BaseRequest) -> str:
    """The route as declared ("/orders/{id}"): bounded, unlike the raw path."""
    match_info = getattr(request, "match_info", None)
    resource = match_info.route.resource if match_info is not None else None
    return resource.canonical if resource is not None else "unmatched"


class JsonAccessLogger(AbstractAccessLogger):
    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        level = logging.DEBUG if request.path in QUIET_PATHS else logging.INFO
        if not self.logger.isEnabledFor(level):
            return
        self.logger.log(
            level,
            "%s %s %s",
            request.method,
            request.path,
            response.status,
            extra={
                "http_method": request.method,
                # The path only: a query string may carry identifiers or tokens.
                "http_path": request.path,
                "http_route": route_template(request),
                "http_status": response.status,
                "duration_ms": round(time * 1000, 3),
                "request_id": request.headers.get("X-Request-Id"),
            },
        )

    @property
    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.DEBUG) or self.logger.isEnabledFor(logging.INFO)
