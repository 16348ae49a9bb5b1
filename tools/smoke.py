"""Smoke test of a running Dozen (`make dev`): issue a token, place an order, wait until notified.

Reads the same .env as `make dev` (through `uv run --env-file .env`); exits 1 if the order
is not notified within SMOKE_TIMEOUT_SECONDS (default 30).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

GATEWAY = f"http://127.0.0.1:{os.environ.get('DEV_GATEWAY_PORT', '8080')}"
BODY = {"currency": "EUR", "items": [{"sku": "SMOKE-1", "quantity": 1, "unit_price_cents": 4200}]}


def token(subject: str) -> str:
    gateway = Path(sys.executable).with_name("gateway")
    issued = subprocess.run(  # noqa: S603 - our own console script, fixed arguments
        [str(gateway), "issue-token", "--subject", subject], capture_output=True, text=True, check=True
    )
    return issued.stdout.strip()


def call(method: str, path: str, bearer: str, body: object = None, **headers: str) -> dict[str, Any]:
    request = urllib.request.Request(  # noqa: S310 - a loopback http URL built above
        GATEWAY + path,
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {bearer}", "Content-Type": "application/json", **headers},
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        answer: dict[str, Any] = json.load(response)
        return answer


def main() -> None:
    deadline = time.monotonic() + float(os.environ.get("SMOKE_TIMEOUT_SECONDS", "30"))
    bearer = token("smoke")
    try:
        order = call("POST", "/api/v1/orders", bearer, BODY, **{"Idempotency-Key": str(uuid.uuid4())})
    except urllib.error.URLError as exc:
        raise SystemExit(f"smoke: cannot place an order at {GATEWAY} ({exc}); is `make dev` running?") from None
    print(f"smoke: placed order {order['id']}, waiting for it to be notified", file=sys.stderr)
    while order["status"] != "notified":
        if time.monotonic() > deadline:
            raise SystemExit(f"smoke: order {order['id']} not notified in time; last seen: {json.dumps(order)}")
        time.sleep(0.2)
        order = call("GET", f"/api/v1/orders/{order['id']}", bearer)
    print(json.dumps(order, indent=2))


if __name__ == "__main__":
    main()
