"""What the public edge adds to every request and response: security headers, a bound on
header size (431), and CORS — closed unless origins are configured.
"""

from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Handler

from gateway.keys import SETTINGS
from shared.web import Problem

# An API answering JSON to programs: nothing in it may be sniffed, framed, cached or
# followed by a referrer; HSTS tells browsers to come back only over TLS (terminated
# in front of the gateway in production).
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "Strict-Transport-Security": "max-age=31536000; includeSubDomains",
}
CORS_METHODS = "GET, POST"
CORS_HEADERS = "Authorization, Content-Type, Idempotency-Key, X-Request-Id"
CORS_MAX_AGE_SECONDS = "600"


@web.middleware
async def security_headers_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Outside the problem middleware, so error answers carry the headers too."""
    response = await handler(request)
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


@web.middleware
async def header_limit_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    limit = request.app[SETTINGS].max_header_bytes
    size = sum(len(name) + len(value) + 4 for name, value in request.raw_headers)  # ": " and CRLF
    if size > limit:
        raise Problem(431, "Request header fields too large", f"The headers take {size} bytes; at most {limit}.")
    return await handler(request)


@web.middleware
async def cors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    origin = request.headers.get("Origin")
    allowed = request.app[SETTINGS].cors_origins
    if origin is None or origin not in allowed:
        if request.method == "OPTIONS" and origin is not None:
            raise Problem(403, "Origin not allowed", "Cross-origin requests from this origin are not allowed.")
        return await handler(request)
    if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
        response: web.StreamResponse = web.Response(status=204)
        response.headers["Access-Control-Allow-Methods"] = CORS_METHODS
        response.headers["Access-Control-Allow-Headers"] = CORS_HEADERS
        response.headers["Access-Control-Max-Age"] = CORS_MAX_AGE_SECONDS
    else:
        response = await handler(request)
        response.headers["Access-Control-Expose-Headers"] = "Location, Idempotent-Replayed, X-Request-Id"
    response.headers["Access-Control-Allow-Origin"] = origin
    response.headers.add("Vary", "Origin")
    return response
