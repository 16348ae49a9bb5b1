"""Smoke test of a running Dozen: issue tokens, place orders through the gateway, wait until
every one is notified and, given a Mailpit URL, until every email is in the SMTP sink.

One tool for every way Dozen runs: `make smoke` (after `make dev`), `make smoke-compose`
(after `make up`) and CI's compose smoke. Tokens come from the gateway's own one-off
`issue-token` command (factor XII) — the local console script, or whatever --issue-token
names, e.g. `docker compose run --rm -T --no-deps gateway issue-token`.
Exits 1 naming what did not happen within --timeout.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")
BODY = {"currency": "EUR", "items": [{"sku": "SMOKE-1", "quantity": 1, "unit_price_cents": 4200}]}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    default_gateway = f"http://127.0.0.1:{os.environ.get('DEV_GATEWAY_PORT', '8080')}"
    parser.add_argument("--gateway", default=default_gateway, help="the gateway's base URL (default: %(default)s)")
    parser.add_argument("--mailpit", help="Mailpit's base URL; when given, every order's email must arrive there")
    parser.add_argument("--orders", type=int, default=1, help="orders to place, concurrently (default: 1)")
    parser.add_argument("--customers", type=int, default=1, help="customers the orders are spread over")
    parser.add_argument("--timeout", type=float, default=float(os.environ.get("SMOKE_TIMEOUT_SECONDS", "60")))
    parser.add_argument(
        "--issue-token",
        default=str(Path(sys.executable).with_name("gateway")) + " issue-token",
        help="command printing a bearer token; `--subject NAME` is appended (default: the local gateway script)",
    )
    return parser.parse_args(argv)


def issue_token(command: str, subject: str) -> str:
    issued = subprocess.run(  # noqa: S603 - the operator's own command line
        [*shlex.split(command), "--subject", subject], capture_output=True, text=True, check=False
    )
    if issued.returncode != 0:
        raise SystemExit(f"smoke: `{command}` failed (exit {issued.returncode}): {issued.stderr.strip()}")
    return issued.stdout.strip().splitlines()[-1]


def get_json(url: str, bearer: str | None = None, body: object = None, **headers: str) -> Any:
    if bearer is not None:
        headers["Authorization"] = f"Bearer {bearer}"
    request = urllib.request.Request(  # noqa: S310 - an http URL the operator gave
        url,
        method="GET" if body is None else "POST",
        data=None if body is None else json.dumps(body).encode(),
        headers={"Content-Type": "application/json", **headers},
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        return json.load(response)


def wait_for(what: str, deadline: float, check: Callable[[], T | None]) -> T:
    """Poll ``check`` until it returns something other than None, or exit at the deadline."""
    while (result := check()) is None:
        if time.monotonic() > deadline:
            raise SystemExit(f"smoke: timed out waiting for {what}")
        time.sleep(0.25)
    return result


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    started = time.monotonic()
    deadline = started + args.timeout
    tokens = [issue_token(args.issue_token, f"smoke-{index}") for index in range(args.customers)]

    def place(index: int) -> tuple[str, str]:
        bearer = tokens[index % len(tokens)]
        key = str(uuid.uuid4())
        order = get_json(f"{args.gateway}/api/v1/orders", bearer, BODY, **{"Idempotency-Key": key})
        return order["id"], bearer

    try:
        with ThreadPoolExecutor(max_workers=min(args.orders, 16)) as pool:
            placed = list(pool.map(place, range(args.orders)))
    except urllib.error.URLError as exc:
        raise SystemExit(f"smoke: cannot place orders at {args.gateway} ({exc}); is Dozen running?") from None
    print(f"smoke: placed {len(placed)} orders for {len(tokens)} customers", file=sys.stderr)

    def unnotified() -> list[str]:
        return [
            order_id
            for order_id, bearer in placed
            if get_json(f"{args.gateway}/api/v1/orders/{order_id}", bearer)["status"] != "notified"
        ]

    wait_for(f"{len(placed)} orders to be notified", deadline, lambda: True if not unnotified() else None)
    notified_after = time.monotonic() - started
    print(f"smoke: all {len(placed)} orders notified ({notified_after:.1f} s)", file=sys.stderr)

    if args.mailpit:
        wanted = {order_id for order_id, _ in placed}

        def all_mail_arrived() -> bool | None:
            listing = get_json(f"{args.mailpit}/api/v1/messages?limit=1000")
            seen = {
                subject.split()[2]
                for subject in (m["Subject"] for m in listing["messages"])
                if subject.startswith("Your order ")
            }
            return True if wanted <= seen else None

        wait_for(f"{len(wanted)} emails in Mailpit", deadline, all_mail_arrived)
        print(f"smoke: every order's email is in Mailpit at {args.mailpit}", file=sys.stderr)
    print(json.dumps({"orders": len(placed), "notified_seconds": round(notified_after, 2)}))


if __name__ == "__main__":
    main()
