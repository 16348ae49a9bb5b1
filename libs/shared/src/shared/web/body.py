"""A request's body read whole, within a time bound, before the request is admitted.

aiohttp reads a body only when the handler asks for it, and waits for it as long as the
client likes: a client sending its body a byte at a time would hold one of the few places
among the requests being worked on (shared.web.admission) for as long as it pleased. Read at
the door instead, a slow body costs a socket, and after ``seconds`` it costs nothing: the
answer is 408 and the connection is closed (what is left of the body is never read).
"""

from __future__ import annotations

import asyncio

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from shared.web.problems import Problem, problem_from_http_exception, problem_response


def read_body_within(seconds: float) -> Middleware:
    @web.middleware
    async def read_body(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.body_exists:
            try:
                async with asyncio.timeout(seconds):
                    # Kept by aiohttp: the handler's own read() or json() gets these bytes.
                    await request.read()
            except TimeoutError:
                return await _answer_and_hang_up(
                    request, Problem(408, "Request Timeout", f"The request body did not arrive within {seconds:g} s.")
                )
            except web.HTTPException as refused:
                # Past the body bound (413): outside the problem middleware, so said as one here.
                return problem_response(problem_from_http_exception(refused))
        return await handler(request)

    return read_body


async def _answer_and_hang_up(request: web.Request, problem: Problem) -> web.StreamResponse:
    answer = problem_response(problem)
    answer.force_close()
    await answer.prepare(request)
    await answer.write_eof()
    # Closed now, once the answer is flushed: aiohttp would otherwise linger up to ten seconds
    # reading the rest of the body, the very wait this bound is there to end.
    request.protocol.force_close()
    return answer
