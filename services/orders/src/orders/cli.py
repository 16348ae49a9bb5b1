"""``orders <process type>``: one codebase, four process types (factor VIII)."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence

import asyncpg

from orders.settings import DatabaseSettings, PruneSettings, QueueSettings, RelaySettings, WebSettings, WorkerSettings
from shared import db
from shared.config import load_settings
from shared.db import Pool
from shared.db.retention import Expiring, add_prune_command
from shared.dlq import add_dlq_commands
from shared.process import running
from shared.web import InternalAccessLogger, run

log = logging.getLogger("orders")


def migrate(arguments: argparse.Namespace) -> None:
    """One-off: apply the service's SQL migrations, then exit (factor XII)."""
    settings = load_settings(DatabaseSettings)
    with running(settings):
        db.migrate(settings.database_url.get_secret_value(), "orders", create_database=arguments.create_database)


def outbox_redrive(arguments: argparse.Namespace) -> None:
    """One-off: publish again the OrderCreated events of orders stuck before their notification."""
    from orders.outbox import NotRedrivable, redrive  # noqa: PLC0415
    from shared.events import OrderCreatedV1  # noqa: PLC0415

    async def work(pool: Pool) -> Sequence[object]:
        try:
            return await redrive(
                pool,
                event_type=OrderCreatedV1.event_type,
                order_ids=arguments.orders,
                stuck_for_seconds=arguments.stuck_for_seconds,
                limit=arguments.limit,
                dry_run=arguments.dry_run,
            )
        except NotRedrivable as exc:
            for order_id, reason in exc.reasons.items():
                # The reason is the whole story: no traceback.
                log.error(  # noqa: TRY400
                    "cannot re-drive; nothing changed", extra={"order_id": str(order_id), "reason": reason}
                )
            raise SystemExit(1) from None

    _outbox_one_off("redrive", work, dry_run=arguments.dry_run, listed="would_redrive", changed="redriven")


def outbox_unpark(arguments: argparse.Namespace) -> None:
    """One-off: let the relays try again the outbox rows they parked after too many refusals."""
    from orders.outbox import unpark  # noqa: PLC0415

    async def work(pool: Pool) -> Sequence[object]:
        return await unpark(pool, order_ids=arguments.orders, dry_run=arguments.dry_run)

    _outbox_one_off("unpark", work, dry_run=arguments.dry_run, listed="parked", changed="unparked")


def _outbox_one_off(
    command: str, work: Callable[[Pool], Awaitable[Sequence[object]]], *, dry_run: bool, listed: str, changed: str
) -> None:
    """Run ``work`` on a connection of its own; print each row it gives back (a dataclass) as a
    JSON line under ``changed``, or ``listed`` on a dry run."""
    settings = load_settings(DatabaseSettings)

    async def rows() -> list[dict[str, str]]:
        async with asyncpg.create_pool(settings.database_url.get_secret_value(), min_size=1, max_size=1) as pool:
            return [{field: str(value) for field, value in vars(row).items()} for row in await work(pool)]

    with running(settings):
        try:
            done = asyncio.run(rows())
        except (OSError, asyncpg.PostgresError):
            log.exception("outbox one-off failed; nothing changed", extra={"command": command})
            raise SystemExit(1) from None
        for row in done:
            # The command's output, one JSON object a line, beside the JSON log lines.
            print(json.dumps({listed if dry_run else changed: row}))
        log.info("outbox one-off done", extra={"command": command, changed: len(done), "dry_run": dry_run})


def serve_web(arguments: argparse.Namespace) -> None:
    from orders.app import create_app  # noqa: PLC0415 - each process imports only what it runs

    settings = load_settings(WebSettings)
    with running(settings):
        # Only the gateway calls this API, and its access log already has every request.
        run(
            create_app(settings),
            port=settings.port,
            management_port=settings.management_port,
            settings=settings,
            access_log=InternalAccessLogger,
        )


def serve_relay(arguments: argparse.Namespace) -> None:
    from orders.relay import create_relay_app  # noqa: PLC0415

    settings = load_settings(RelaySettings)
    with running(settings):
        run(create_relay_app(settings), port=settings.port, settings=settings)


def serve_worker(arguments: argparse.Namespace) -> None:
    from orders.worker import create_worker_app  # noqa: PLC0415

    settings = load_settings(WorkerSettings)
    with running(settings):
        run(create_worker_app(settings), port=settings.port, settings=settings)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="orders", description="Dozen's order service.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    migrate_parser = commands.add_parser("migrate", help="apply the database migrations and exit (one-off)")
    migrate_parser.add_argument(
        "--create-database", action="store_true", help="create the database first if missing (dev, CI)"
    )
    migrate_parser.set_defaults(run=migrate)
    commands.add_parser(
        "web", help="serve the HTTP API on ORDERS_PORT, probes and metrics on ORDERS_MANAGEMENT_PORT"
    ).set_defaults(run=serve_web)
    commands.add_parser("relay", help="publish outbox rows to RabbitMQ; management port ORDERS_PORT").set_defaults(
        run=serve_relay
    )
    commands.add_parser(
        "worker", help="consume NotificationSent and mark orders notified; management port ORDERS_PORT"
    ).set_defaults(run=serve_worker)
    outbox = commands.add_parser("outbox", help="repair what the outbox sent (one-off)")
    outbox_commands = outbox.add_subparsers(dest="outbox_command", required=True, metavar="OUTBOX_COMMAND")
    # What both outbox one-offs take: which orders (default: all that qualify), and whether to change anything.
    picking = argparse.ArgumentParser(add_help=False)
    picking.add_argument(
        "--order", dest="orders", action="append", type=uuid.UUID, metavar="ORDER_ID", help="this order (repeatable)"
    )
    picking.add_argument("--dry-run", action="store_true", help="list what would change; change nothing")
    redrive = outbox_commands.add_parser(
        "redrive",
        parents=[picking],
        help="publish again the OrderCreated events of orders published but never notified "
        "(a lost or purged delivery); consumers drop what they have seen, so it is always safe",
    )
    redrive.add_argument(
        "--stuck-for-seconds",
        type=float,
        default=300.0,
        help="without --order: every order published at least this long ago and not yet notified (default 300)",
    )
    redrive.add_argument("--limit", type=int, default=1000, help="at most this many (default 1000)")
    redrive.set_defaults(run=outbox_redrive)
    outbox_commands.add_parser(
        "unpark",
        parents=[picking],
        help="try again the rows the relays parked after the broker refused them too often "
        "(dozen_outbox_parked > 0), once the cause is fixed",
    ).set_defaults(run=outbox_unpark)
    add_dlq_commands(commands, QueueSettings)
    # Kept only to make a repeat harmless: a published event's row, a consumed event's id.
    add_prune_command(commands, PruneSettings, [Expiring("outbox", "published_at"), Expiring("inbox", "received_at")])
    arguments = parser.parse_args(argv)
    arguments.run(arguments)
