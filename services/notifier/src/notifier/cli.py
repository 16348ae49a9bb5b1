"""``notifier <command>``: the worker, and its one-off admin commands (factor XII)."""

from __future__ import annotations

import argparse

from notifier.settings import DatabaseSettings, PruneSettings, QueueSettings, WorkerSettings
from shared import db
from shared.config import load_settings
from shared.db.retention import Expiring, add_prune_command
from shared.dlq import add_dlq_commands
from shared.process import running
from shared.web import run


def migrate(arguments: argparse.Namespace) -> None:
    settings = load_settings(DatabaseSettings)
    with running(settings):
        db.migrate(settings.database_url.get_secret_value(), "notifier", create_database=arguments.create_database)


def worker(arguments: argparse.Namespace) -> None:
    from notifier.app import create_worker_app  # noqa: PLC0415 - each process imports only what it runs

    settings = load_settings(WorkerSettings)
    with running(settings):
        run(create_worker_app(settings), port=settings.port, settings=settings)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="notifier", description="Dozen's notifier.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    migrate_parser = commands.add_parser("migrate", help="apply the database migrations and exit (one-off)")
    migrate_parser.add_argument("--create-database", action="store_true", help="create the database first if missing")
    migrate_parser.set_defaults(run=migrate)
    commands.add_parser("worker", help="consume OrderCreated; management port NOTIFIER_PORT").set_defaults(run=worker)
    add_dlq_commands(commands, QueueSettings)
    # The inbox of OrderCreated: a notification's row is what stops a second email.
    add_prune_command(commands, PruneSettings, [Expiring("notifications", "sent_at")])
    arguments = parser.parse_args(argv)
    arguments.run(arguments)
