"""A toy service that misbehaves on request, for proving the audit's runtime checks fail.

`serve`: an HTTP process shaped like a Dozen one (/readyz, /metrics with dozen_build_info,
POST /work held until SIGUSR1, JSON logs, graceful SIGTERM) unless told to break a factor: listen where its environment
did not say, start slowly, ignore SIGTERM or drop its work in flight, log plain text or to
stderr, write files, name another release. `publish`: send one event to an exchange twice.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import aio_pika
from aiohttp import web
from prometheus_client import Gauge
from prometheus_client.aiohttp import make_aiohttp_handler

BUILD_INFO = Gauge("dozen_build_info", "Always 1.", ["service", "version", "release"])


def log(arguments: argparse.Namespace, message: str) -> None:
    if arguments.plain_log:
        print(f"{datetime.now(UTC)} INFO {message}", flush=True)
        return
    record = {
        "timestamp": datetime.now(UTC).isoformat(),
        "level": "info",
        "message": message,
        "service": "toy",
        "release": arguments.release,
    }
    print(json.dumps(record), flush=True)


async def serve(arguments: argparse.Namespace) -> None:
    started = time.monotonic()
    held = asyncio.Event()
    in_flight = 0

    async def ready(request: web.Request) -> web.Response:
        late = time.monotonic() - started < arguments.ready_after
        return web.json_response({"status": "starting" if late else "ready"}, status=503 if late else 200)

    async def work(request: web.Request) -> web.Response:
        nonlocal in_flight
        in_flight += 1
        try:
            await held.wait()
        finally:
            in_flight -= 1
        return web.json_response({"done": True})

    async def count(request: web.Request) -> web.Response:
        return web.json_response({"in_flight": in_flight})

    BUILD_INFO.labels("toy", "0", arguments.release).set(1)
    app = web.Application()
    app.router.add_get("/readyz", ready)
    app.router.add_get("/metrics", make_aiohttp_handler())
    app.router.add_post("/work", work)
    app.router.add_get("/in-flight", count)
    # Work is held until SIGUSR1: a signal still arrives once the listener has closed.
    asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, held.set)
    if arguments.stderr:
        print("a warning on stderr", file=sys.stderr, flush=True)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    for port in [int(os.environ["TOY_PORT"]), *arguments.also_listen]:
        await web.TCPSite(runner, "127.0.0.1", port).start()
    log(arguments, "listening")
    stop = asyncio.Event()
    if arguments.ignore_sigterm:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    else:
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    log(arguments, "shutdown requested")
    if arguments.drop_in_flight:
        os._exit(0)
    await runner.cleanup()
    log(arguments, "stopped")


async def publish(arguments: argparse.Namespace) -> None:
    """One event, published twice: what a relay without its row lock would do."""
    connection = await aio_pika.connect(arguments.amqp_url)
    async with connection:
        channel = await connection.channel()
        exchange = await channel.get_exchange(arguments.exchange)
        body = json.dumps({"id": str(uuid.uuid4()), "type": "toy.event.v1", "subject": arguments.subject}).encode()
        for _ in range(2):
            await exchange.publish(aio_pika.Message(body), routing_key="toy.event.v1")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    server = commands.add_parser("serve")
    server.add_argument("--release", default="toy-release")
    server.add_argument("--also-listen", type=int, action="append", default=[])
    server.add_argument("--ready-after", type=float, default=0.0)
    server.add_argument("--ignore-sigterm", action="store_true")
    server.add_argument("--drop-in-flight", action="store_true")
    server.add_argument("--plain-log", action="store_true")
    server.add_argument("--stderr", action="store_true")
    server.add_argument("--write", action="append", default=[])
    publisher = commands.add_parser("publish")
    publisher.add_argument("amqp_url")
    publisher.add_argument("exchange")
    publisher.add_argument("subject")
    arguments = parser.parse_args()
    for path in getattr(arguments, "write", []):
        with Path(path).open("a") as written:
            written.write("state\n")
    asyncio.run(serve(arguments) if arguments.command == "serve" else publish(arguments))


if __name__ == "__main__":
    main()
