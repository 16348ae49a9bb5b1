"""``notifier <command>``: the worker, and its one-off admin commands (factor XII)."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager

from notifier.settings import DatabaseSettings, QueueSettings, WorkerSettings
from shared import db
from shared.config import load_settings
from shared.process import running
from shared.web import run

log = logging.getLogger("notifier")


def migrate(arguments: argparse.Namespace) -> None:
    settings = load_settings(DatabaseSettings)
    with running(settings):
        db.migrate(settings.database_url.get_secret_value(), "notifier", create_database=arguments.create_database)


def worker(arguments: argparse.Namespace) -> None:
    from notifier.app import create_worker_app  # noqa: PLC0415 - each process imports only what it runs

    settings = load_settings(WorkerSettings)
    with running(settings):
        run(create_worker_app(settings), port=settings.port, settings=settings)


def dlq_list(arguments: argparse.Namespace) -> None:
    from notifier.dlq import NoDeadLetterQueue, list_dead_letters  # noqa: PLC0415

    settings = load_settings(QueueSettings)
    with running(settings), _fails_plainly(NoDeadLetterQueue):
        for record in asyncio.run(
            list_dead_letters(settings.amqp_url.get_secret_value(), settings.queue, arguments.limit)
        ):
            # The command's output, one JSON object a line, beside the JSON log lines.
            print(json.dumps({"dead_letter": record}, default=str))


def dlq_replay(arguments: argparse.Namespace) -> None:
    from notifier.dlq import NoDeadLetterQueue, replay_dead_letters  # noqa: PLC0415

    settings = load_settings(QueueSettings)
    with running(settings), _fails_plainly(NoDeadLetterQueue):
        replayed = asyncio.run(
            replay_dead_letters(settings.amqp_url.get_secret_value(), settings.queue, arguments.limit)
        )
        log.info("replay done", extra={"replayed": replayed, "queue": settings.queue})


@contextmanager
def _fails_plainly(*expected: type[Exception]) -> Iterator[None]:
    """An operator's mistake is one clear log line and exit status 1, not a traceback."""
    try:
        yield
    except expected as exc:
        log.error(str(exc))  # noqa: TRY400 - the message is the whole story
        raise SystemExit(1) from None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="notifier", description="Dozen's notifier.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    migrate_parser = commands.add_parser("migrate", help="apply the database migrations and exit (one-off)")
    migrate_parser.add_argument("--create-database", action="store_true", help="create the database first if missing")
    migrate_parser.set_defaults(run=migrate)
    commands.add_parser("worker", help="consume OrderCreated; management port NOTIFIER_PORT").set_defaults(run=worker)
    dlq = commands.add_parser("dlq", help="inspect or re-drive the dead-letter queue (one-off)")
    dlq_commands = dlq.add_subparsers(dest="dlq_command", required=True, metavar="DLQ_COMMAND")
    listing = dlq_commands.add_parser("list", help="print dead-lettered messages without removing them")
    listing.add_argument("--limit", type=int, default=100)
    listing.set_defaults(run=dlq_list)
    replay = dlq_commands.add_parser("replay", help="move dead-lettered messages back onto the worker's queue")
    replay.add_argument("--limit", type=int, default=1000)
    replay.set_defaults(run=dlq_replay)
    arguments = parser.parse_args(argv)
    arguments.run(arguments)
