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
import asyncio
import json
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import aiohttp

from harness.api import Customer

T = TypeVar("T")
# At most this many orders on their way at once: a smoke test, not a load test.
CONCURRENCY = 16


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


async def wait_for(what: str, deadline: float, check: Callable[[], Awaitable[T | None]]) -> T:
    """Poll ``check`` until it returns something other than None, or exit at the deadline."""
    while (result := await check()) is None:
        if time.monotonic() > deadline:
            raise SystemExit(f"smoke: timed out waiting for {what}")
        await asyncio.sleep(0.25)  # the polling interval of a condition checked above
    return result


async def smoke(args: argparse.Namespace) -> dict[str, Any]:
    started = time.monotonic()
    deadline = started + args.timeout
    tokens = [issue_token(args.issue_token, f"smoke-{index}") for index in range(args.customers)]
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
        customers = [Customer(http, args.gateway, token) for token in tokens]
        slots = asyncio.Semaphore(CONCURRENCY)

        async def place(index: int) -> tuple[str, Customer]:
            customer = customers[index % len(customers)]
            async with slots:
                return (await customer.place()).order["id"], customer

        try:
            placed = await asyncio.gather(*(place(index) for index in range(args.orders)))
        except aiohttp.ClientConnectionError as exc:
            raise SystemExit(f"smoke: cannot place orders at {args.gateway} ({exc}); is Dozen running?") from None
        print(f"smoke: placed {len(placed)} orders for {len(tokens)} customers", file=sys.stderr)

        async def all_notified() -> bool | None:
            for order_id, customer in placed:
                if (await customer.order(order_id)).order["status"] != "notified":
                    return None
            return True

        await wait_for(f"{len(placed)} orders to be notified", deadline, all_notified)
        notified_after = time.monotonic() - started
        print(f"smoke: all {len(placed)} orders notified ({notified_after:.1f} s)", file=sys.stderr)

        if args.mailpit:
            wanted = {order_id for order_id, _ in placed}

            async def all_mail_arrived() -> bool | None:
                async with http.get(f"{args.mailpit}/api/v1/messages", params={"limit": "1000"}) as answer:
                    listing = await answer.json()
                subjects = (message["Subject"] for message in listing["messages"])
                seen = {subject.split()[2] for subject in subjects if subject.startswith("Your order ")}
                return True if wanted <= seen else None

            await wait_for(f"{len(wanted)} emails in Mailpit", deadline, all_mail_arrived)
            print(f"smoke: every order's email is in Mailpit at {args.mailpit}", file=sys.stderr)
    return {"orders": len(placed), "notified_seconds": round(notified_after, 2)}


def main(argv: list[str] | None = None) -> None:
    print(json.dumps(asyncio.run(smoke(parse_args(argv)))))


if __name__ == "__main__":
    main()
