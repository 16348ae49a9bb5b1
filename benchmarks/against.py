"""Open-loop orders against a Dozen already running (``make bench-dev``, after ``make dev``).

The same load generator as ``make bench``, aimed at a gateway it did not start: tokens for
the customers come from the gateway's own one-off (``--issue-token``, run with one
``--subject`` per customer), and what it reports is what a client sees — how every request
was answered, the goodput, the latencies. Exits 1 if a request got no answer at all.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import uuid
from urllib.parse import urlsplit

import uvloop

from harness.api import ORDERS_PATH
from harness.load import Answer, open_loop

from .http import HttpClient
from .pipeline import BODY, CLIENT_TIMEOUT_SECONDS, MAX_CONNECTIONS, answered


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="make bench-dev", description=__doc__.split("\n\n")[0])
    parser.add_argument("--gateway", required=True, help="the gateway's base URL")
    parser.add_argument("--rate", type=float, default=400.0, help="orders/s offered")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--customers", type=int, default=100)
    parser.add_argument(
        "--issue-token", default="gateway issue-token", help="the one-off that prints tokens (default: %(default)s)"
    )
    return parser.parse_args()


def issue_tokens(command: str, subjects: list[str]) -> list[str]:
    arguments = [argument for subject in subjects for argument in ("--subject", subject)]
    done = subprocess.run([*shlex.split(command), *arguments], capture_output=True, text=True, check=False)  # noqa: S603
    tokens = done.stdout.split()
    if done.returncode != 0 or len(tokens) != len(subjects):
        raise SystemExit(f"make bench-dev: {command} failed ({done.returncode}):\n{done.stderr}")
    return tokens


async def main() -> int:
    args = parse_args()
    gateway = urlsplit(args.gateway)
    if not gateway.hostname or not gateway.port:
        raise SystemExit("make bench-dev: --gateway needs a host and a port")
    tokens = issue_tokens(args.issue_token, [f"open-loop-{number}" for number in range(args.customers)])
    client = HttpClient(
        gateway.hostname, gateway.port, max_connections=MAX_CONNECTIONS, timeout_seconds=CLIENT_TIMEOUT_SECONDS
    )

    async def place(index: int) -> Answer:
        headers = {
            "Content-Type": "application/json",
            "Authorization": f"Bearer {tokens[index % len(tokens)]}",
            "Idempotency-Key": str(uuid.uuid4()),
        }
        return await client.send(client.request_bytes("POST", ORDERS_PATH, headers, BODY))

    print(f"{args.rate:g} orders/s for {args.seconds:g} s through {args.gateway} ...", flush=True)
    try:
        run = await open_loop(place, rate=args.rate, seconds=args.seconds)
    finally:
        client.close()
    figures = answered(args.rate, run)
    print(json.dumps(figures, indent=2))
    unanswered = sum(1 for attempt in run.attempts if attempt.status is None)
    return 1 if unanswered else 0


if __name__ == "__main__":
    raise SystemExit(uvloop.run(main()))
