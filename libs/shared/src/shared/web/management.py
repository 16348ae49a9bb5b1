"""Probes and metrics on a port of their own, apart from an API's.

/metrics tells whoever reads it the build, the release and every counter; /healthz and
/readyz say how the process is doing. None of it is for the public, and a NetworkPolicy can
open a port to monitoring but not a path. So a process that serves an API answers those
three paths only on its management port, and the API only on its own port: each port 404s
what belongs to the other, at the door. (Workers serve nothing else: their one port is
their management port.)
"""

from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from pydantic import BaseModel, model_validator

from shared.config import Port
from shared.web.access_log import QUIET_PATHS
from shared.web.problems import Problem, problem_response

MANAGEMENT_PATHS = QUIET_PATHS


class ApiPorts(BaseModel):
    """Mixed into an API process's settings: ``<SERVICE>_PORT`` for the API and
    ``<SERVICE>_MANAGEMENT_PORT`` for probes and metrics."""

    port: Port
    management_port: Port

    @model_validator(mode="after")
    def _apart(self) -> ApiPorts:
        if self.port == self.management_port:
            raise ValueError(
                "the management port must not be the API's port: metrics and probes are not for the public"
            )
        return self


def management_apart(management_port: int, *, paths: frozenset[str] = MANAGEMENT_PATHS) -> Middleware:
    """Answer ``paths`` only on ``management_port``, and everything else only on the other port."""

    @web.middleware
    async def by_port(request: web.Request, handler: Handler) -> web.StreamResponse:
        if (request.path in paths) != (_arrived_on(request) == management_port):
            return problem_response(Problem(404, "Not Found", "Nothing is served at this path on this port."))
        return await handler(request)

    return by_port


def _arrived_on(request: web.Request) -> int | None:
    # The socket's own port: the Host header is the client's to write.
    transport = request.transport
    sockname = transport.get_extra_info("sockname") if transport is not None else None
    return int(sockname[1]) if isinstance(sockname, tuple) else None
