"""``orders <process type>``: one codebase, four process types (factor VIII)."""

from __future__ import annotations

import argparse
import logging

from orders.settings import OrdersSettings, RelaySettings, WebSettings, WorkerSettings
from shared import db
from shared.config import load_settings
from shared.process import running
from shared.web import run

log = logging.getLogger("orders")


def migrate(arguments: argparse.Namespace) -> None:
    """One-off: apply the service's SQL migrations, then exit (factor XII)."""
    settings = load_settings(OrdersSettings)
    with running(settings):
        db.migrate(settings.database_url.get_secret_value(), "orders", create_database=arguments.create_database)


def serve_web(arguments: argparse.Namespace) -> None:
    from orders.app import create_app  # noqa: PLC0415 - each process imports only what it runs

    settings = load_settings(WebSettings)
    with running(settings):
        run(create_app(settings), port=settings.port, settings=settings)


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


COMMANDS = {
    "migrate": (migrate, "apply the database migrations and exit (one-off)"),
    "web": (serve_web, "serve the HTTP API on ORDERS_PORT"),
    "relay": (serve_relay, "publish outbox rows to RabbitMQ; management port ORDERS_PORT"),
    "worker": (serve_worker, "consume NotificationSent and mark orders notified; management port ORDERS_PORT"),
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="orders", description="Dozen's order service.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (_, help_text) in COMMANDS.items():
        command = commands.add_parser(name, help=help_text)
        if name == "migrate":
            command.add_argument(
                "--create-database", action="store_true", help="create the database first if missing (dev, CI)"
            )
    arguments = parser.parse_args(argv)
    COMMANDS[arguments.command][0](arguments)
