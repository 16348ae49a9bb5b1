"""The development fault switchboard: `make dev`'s mail server, with faults switched on and
off over HTTP while you watch (harness.faults defines them).

    python -m harness.switchboard serve --smtp-port 1025 --port 8085   # the Procfile's `faults`
    python -m harness.switchboard switch smtp-refusing [off]           # `make fault NAME=… [off]`

- GET /faults: each fault, whether it is on and since when, and its last verdict;
- PUT /faults/{name}: switch it on;
- DELETE /faults/{name}: switch it off, wait (bounded) until every order accepted while it
  was on is notified, and answer the verdict: accepted meanwhile, lost (not notified in
  time; must be 0), duplicated (emailed more than once; must be 0), time to drain.

The board's fault panel calls the same API through the gateway (GATEWAY_BOARD_FAULTS_URL).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from email import message_from_bytes, policy
from pathlib import Path

import asyncpg
import psutil
from aiohttp import web

from harness.faults import FAULTS, Targets
from shared.testing.smtp import SmtpSink

log = logging.getLogger("switchboard")

# How long switching a fault off waits for the orders taken meanwhile to be notified.
DRAIN_TIMEOUT_SECONDS = 120.0
POLL_SECONDS = 0.25
ORDER_ID_HEADER = "X-Dozen-Order-Id"


@dataclass(frozen=True)
class Verdict:
    fault: str
    on_at: str
    off_at: str
    accepted: int
    lost: int
    duplicated: int
    # Orders the fault dead-letters on purpose (poison): parked, for `notifier dlq replay`.
    dead_lettered: int
    # From switching off to the last of those orders notified; None: not all were, in time.
    drained_seconds: float | None
    # What the fault itself says of its run (the burst: its answers), if anything.
    note: str | None = None

    def __str__(self) -> str:
        drained = f"drained in {self.drained_seconds:.1f} s" if self.drained_seconds is not None else "NOT drained"
        parked = f", {self.dead_lettered} dead-lettered on purpose" if self.dead_lettered else ""
        note = f" ({self.note})" if self.note else ""
        return (
            f"{self.fault}: {self.accepted} orders accepted while it was on, {self.lost} lost, "
            f"{self.duplicated} duplicated{parked}, {drained}{note}"
        )


class Switchboard:
    def __init__(self, targets: Targets, orders_database_url: str, *, drain_timeout_seconds: float) -> None:
        self._targets = targets
        self._database_url = orders_database_url
        self._drain_timeout = drain_timeout_seconds
        self.on: dict[str, datetime] = {}
        self.verdicts: dict[str, Verdict] = {}
        self._judging = 0
        # Emails per order, counted only while some fault is on or being judged: bounded by that.
        self._emails: Counter[str] = Counter()

    def emailed(self, content: bytes) -> None:
        # Called on the mail server's own thread: one writer, and a count read a moment late is harmless.
        headers = message_from_bytes(content, policy=policy.default)
        order_id = str(headers.get(ORDER_ID_HEADER, ""))
        log.info("email accepted for order %s to %s", order_id, headers.get("To", ""))
        if self.on or self._judging:
            self._emails[order_id] += 1

    async def switch_on(self, name: str) -> None:
        if name in self.on:
            return
        started = await self._database_now()
        await FAULTS[name].switch_on(self._targets)
        self.on[name] = started
        log.warning("fault on: %s", name)

    async def switch_off(self, name: str) -> Verdict | None:
        """Off, and the verdict once the orders taken meanwhile are through (None: it was not on)."""
        note = await FAULTS[name].switch_off(self._targets)
        started = self.on.pop(name, None)
        if started is None:
            return None
        log.warning("fault off: %s; waiting for the orders taken meanwhile", name)
        self._judging += 1
        try:
            verdict = replace(await self._judge(name, started, await self._database_now()), note=note)
        finally:
            self._judging -= 1
            if not self.on and not self._judging:
                self._emails.clear()
        self.verdicts[name] = verdict
        log.warning("verdict: %s", verdict)
        return verdict

    async def _judge(self, name: str, started: datetime, ended: datetime) -> Verdict:
        switched_off = time.monotonic()
        deadline = switched_off + self._drain_timeout
        connection = await asyncpg.connect(self._database_url)
        try:
            while True:
                rows = await connection.fetch(
                    "SELECT id::text AS id, customer_id, notified_at FROM orders WHERE created_at BETWEEN $1 AND $2",
                    started,
                    ended,
                )
                waiting = [row for row in rows if row["notified_at"] is None]
                parked = [row["id"] for row in waiting if row["customer_id"] == FAULTS[name].parks_orders_of]
                pending = [row["id"] for row in waiting if row["customer_id"] != FAULTS[name].parks_orders_of]
                if not pending or time.monotonic() >= deadline:
                    break
                await asyncio.sleep(POLL_SECONDS)  # polling the database, with a deadline
        finally:
            await connection.close()
        return Verdict(
            fault=name,
            on_at=started.isoformat(),
            off_at=ended.isoformat(),
            accepted=len(rows),
            lost=len(pending),
            duplicated=sum(1 for row in rows if self._emails[row["id"]] > 1),
            dead_lettered=len(parked),
            drained_seconds=None if pending else round(time.monotonic() - switched_off, 1),
        )

    async def _database_now(self) -> datetime:
        # The database's clock, the one that stamps the orders: the window is in its terms.
        connection = await asyncpg.connect(self._database_url)
        try:
            now: datetime = await connection.fetchval("SELECT clock_timestamp()")
        finally:
            await connection.close()
        return now


SWITCHBOARD = web.AppKey("switchboard", Switchboard)


def _fault_name(request: web.Request) -> str:
    name = request.match_info["name"]
    if name not in FAULTS:
        raise web.HTTPNotFound(text=json.dumps({"error": f"no fault {name!r}; try one of {sorted(FAULTS)}"}))
    return name


async def list_faults(request: web.Request) -> web.Response:
    switchboard = request.app[SWITCHBOARD]
    faults = [
        {
            "name": name,
            "description": fault.description,
            "on": name in switchboard.on,
            "since": switchboard.on[name].isoformat() if name in switchboard.on else None,
            "verdict": asdict(switchboard.verdicts[name]) if name in switchboard.verdicts else None,
        }
        for name, fault in FAULTS.items()
    ]
    return web.json_response({"faults": faults})


async def fault_on(request: web.Request) -> web.Response:
    name = _fault_name(request)
    try:
        await request.app[SWITCHBOARD].switch_on(name)
    except LookupError as missing:
        raise web.HTTPConflict(text=json.dumps({"error": str(missing)})) from None
    return web.json_response({"name": name, "on": True})


async def fault_off(request: web.Request) -> web.Response:
    verdict = await request.app[SWITCHBOARD].switch_off(_fault_name(request))
    return web.json_response({"name": request.match_info["name"], "on": False, "verdict": verdict and asdict(verdict)})


def create_app(switchboard: Switchboard) -> web.Application:
    app = web.Application()
    app[SWITCHBOARD] = switchboard
    app.router.add_get("/faults", list_faults)
    app.router.add_put("/faults/{name}", fault_on)
    app.router.add_delete("/faults/{name}", fault_off)
    return app


def serve(smtp_port: int, port: int) -> None:
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s", stream=sys.stdout)
    logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd: a line per SMTP command
    mailbox = SmtpSink(port=smtp_port, retain=False)
    targets = Targets(
        mailbox=mailbox,
        root_pid=_honcho(),
        gateway_url=f"http://127.0.0.1:{os.environ.get('DEV_GATEWAY_PORT', '8080')}",
        issue_tokens=_issue_tokens,
        database_urls={"orders": os.environ["ORDERS_DATABASE_URL"], "notifier": os.environ["NOTIFIER_DATABASE_URL"]},
    )
    switchboard = Switchboard(targets, os.environ["ORDERS_DATABASE_URL"], drain_timeout_seconds=DRAIN_TIMEOUT_SECONDS)
    mailbox.on_accepted = switchboard.emailed
    app = create_app(switchboard)

    @asynccontextmanager
    async def mail_server(app: web.Application) -> AsyncIterator[None]:
        mailbox.start()
        try:
            yield
        finally:
            mailbox.stop()

    app.cleanup_ctx.append(mail_server)
    log.info("mail server on 127.0.0.1:%d, faults on http://127.0.0.1:%d/faults", smtp_port, port)
    web.run_app(app, host="127.0.0.1", port=port, print=None)


async def _issue_tokens(subjects: Sequence[str]) -> list[str]:
    """Tokens from the gateway's own one-off, as every client of Dozen gets them (factor XII)."""
    arguments = [argument for subject in subjects for argument in ("--subject", subject)]
    process = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).with_name("gateway")), "issue-token", *arguments,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    output, errors = await process.communicate()
    if process.returncode != 0:
        raise LookupError(f"gateway issue-token failed: {errors.decode().strip()}")
    return output.decode().split()


def _honcho() -> int:
    """The honcho that started this and every process of the run (it forks a manager per
    process, so the run's root is the outermost honcho above us); our parent, failing that."""
    root = psutil.Process(os.getppid())
    for ancestor in root.parents():
        if not any("honcho" in word for word in ancestor.cmdline()):
            break
        root = ancestor
    return root.pid


def switch(url: str, name: str, *, off: bool) -> int:
    request = urllib.request.Request(f"{url}/faults/{name}", method="DELETE" if off else "PUT")  # noqa: S310 - http only
    try:
        with urllib.request.urlopen(request, timeout=DRAIN_TIMEOUT_SECONDS + 30) as answer:  # noqa: S310
            body = json.loads(answer.read())
    except urllib.error.HTTPError as refused:
        print(f"fault: {json.loads(refused.read()).get('error', refused.reason)}", file=sys.stderr)
        return 2
    except urllib.error.URLError as unreachable:
        print(f"fault: no switchboard at {url} ({unreachable.reason}); is `make dev` running?", file=sys.stderr)
        return 2
    if not off:
        print(f"fault on: {name} ({FAULTS[name].description}) — watch the board, then: make fault NAME={name} off")
        return 0
    if body["verdict"] is None:
        print(f"fault off: {name} (it was not on)")
        return 0
    verdict = Verdict(**body["verdict"])
    print(f"fault off: {verdict}")
    return 0 if verdict.lost == 0 and verdict.duplicated == 0 and verdict.drained_seconds is not None else 1


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    serving = commands.add_parser("serve", help="the mail server and the fault switchboard")
    serving.add_argument("--smtp-port", type=int, required=True)
    serving.add_argument("--port", type=int, required=True)
    switching = commands.add_parser("switch", help="switch a fault on, or off with its verdict")
    switching.add_argument("name", choices=sorted(FAULTS))
    switching.add_argument("state", nargs="?", choices=["on", "off"], default="on")
    default_url = f"http://127.0.0.1:{os.environ.get('DEV_FAULTS_PORT', '8085')}"
    switching.add_argument("--url", default=default_url, help="the switchboard (default: %(default)s)")
    args = parser.parse_args(argv)
    if args.command == "serve":
        serve(args.smtp_port, args.port)
    else:
        sys.exit(switch(args.url, args.name, off=args.state == "off"))


if __name__ == "__main__":
    main()
