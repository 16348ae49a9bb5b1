"""What the attacks need: tokens made by hand, a client of its own address, a raw socket."""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp

from harness.stack import JWT_SECRET

# The gateway limits requests without a valid token per client address: each attack comes
# from an address of its own on loopback (all of 127.0.0.0/8 is), so none spends another's.
_ADDRESSES = itertools.count(1)
HASHES = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}


def _segment(value: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()


def claims(subject: str = "mallory", **changes: Any) -> dict[str, Any]:
    """The claims of a token the gateway would issue, with ``changes`` (None drops one)."""
    now = int(time.time())
    base = {"iss": "dozen", "aud": "dozen-api", "sub": subject, "iat": now, "nbf": now, "exp": now + 60}
    return {name: value for name, value in (base | changes).items() if value is not None}


def token(header: dict[str, Any], body: dict[str, Any], key: str | None = JWT_SECRET) -> str:
    """A JWT as an attacker writes one: signed with ``key`` by the header's HMAC algorithm, or
    carrying a signature made up (no key, or an algorithm that is not HMAC)."""
    signing_input = f"{_segment({'typ': 'at+jwt'} | header)}.{_segment(body)}"
    digest = HASHES.get(header.get("alg", ""))
    if key is None or digest is None:
        signature = b"" if header.get("alg") == "none" else b"made-up-signature"
    else:
        signature = hmac.new(key.encode(), signing_input.encode(), digest).digest()
    return f"{signing_input}.{base64.urlsafe_b64encode(signature).rstrip(b'=').decode()}"


def bearer(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


@asynccontextmanager
async def client_of_its_own_address() -> AsyncIterator[aiohttp.ClientSession]:
    number = next(_ADDRESSES)
    address = f"127.99.{number // 250}.{number % 250 + 1}"
    connector = aiohttp.TCPConnector(local_addr=(address, 0), force_close=True)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30)) as http:
        yield http
