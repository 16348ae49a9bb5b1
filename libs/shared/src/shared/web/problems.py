"""Errors as RFC 9457 problem details (application/problem+json), never as stack traces."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler

PROBLEM_CONTENT_TYPE = "application/problem+json"

log = logging.getLogger(__name__)

# Headers an HTTPException may carry that still mean something on the problem response.
_KEPT_HEADERS = ("Allow", "Retry-After", "WWW-Authenticate", "Location")


class Problem(Exception):
    """Raise from a handler to answer with a problem document."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str | None = None,
        *,
        type_: str = "about:blank",
        headers: Mapping[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        super().__init__(detail or title)
        self.status = status
        self.title = title
        self.detail = detail
        self.type = type_
        self.headers = dict(headers or {})
        self.extensions = extensions


def problem_document(problem: Problem) -> dict[str, Any]:
    body: dict[str, Any] = {"type": problem.type, "title": problem.title, "status": problem.status}
    if problem.detail:
        body["detail"] = problem.detail
    body.update(problem.extensions)
    return body


def problem_json(problem: Problem) -> bytes:
    """The document as sent, for an answer written once and sent many times."""
    return json.dumps(problem_document(problem)).encode()


def problem_response(problem: Problem) -> web.Response:
    return web.json_response(
        problem_document(problem), status=problem.status, content_type=PROBLEM_CONTENT_TYPE, headers=problem.headers
    )


def problem_from_http_exception(exc: web.HTTPException) -> Problem:
    default_text = f"{exc.status}: {exc.reason}"
    detail = exc.text if exc.text and exc.text != default_text else None
    headers = {name: exc.headers[name] for name in _KEPT_HEADERS if name in exc.headers}
    return Problem(exc.status, exc.reason, detail, headers=headers)


@web.middleware
async def problem_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except Problem as problem:
        return problem_response(problem)
    except web.HTTPException as exc:
        if exc.status < 400 or exc.content_type == PROBLEM_CONTENT_TYPE:
            raise
        return problem_response(problem_from_http_exception(exc))
    except asyncio.CancelledError:
        raise
    except Exception:
        # The traceback goes to the log, with the trace id; the client learns nothing internal.
        log.exception("unhandled error", extra={"http_method": request.method, "http_path": request.path})
        return problem_response(Problem(500, "Internal Server Error", "An unexpected error occurred."))
