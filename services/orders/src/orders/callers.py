"""Only the gateway may call orders web: a bearer credential both are configured with.

Orders web trusts the ``customer_id`` it is sent; the gateway is what checked it. Anyone
else who can reach orders web could place and read any customer's orders, so every API
request must carry the credential (compared in constant time). In Kubernetes a
NetworkPolicy also admits only gateway pods; the credential is what holds where no such
policy does (compose, a flat network, a policy mistakenly widened). Probes and scrapes
carry none: they reveal no order.
"""

from __future__ import annotations

import hmac
from collections.abc import Collection

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from pydantic import SecretStr

from shared.web import Problem
from shared.web.access_log import QUIET_PATHS


def gateway_only(credential: SecretStr, *, exempt: Collection[str] = QUIET_PATHS) -> Middleware:
    expected = f"Bearer {credential.get_secret_value()}".encode()

    @web.middleware
    async def check_caller(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path not in exempt:
            offered = request.headers.get("Authorization", "").encode()
            if not hmac.compare_digest(offered, expected):
                raise Problem(
                    401,
                    "Unauthorized",
                    "Orders answers the gateway only.",
                    headers={"WWW-Authenticate": 'Bearer realm="dozen-orders"'},
                )
        return await handler(request)

    return check_caller
