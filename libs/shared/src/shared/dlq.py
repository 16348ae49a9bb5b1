"""``<service> dlq list|replay``: the one-offs on a consumer's dead-letter queue (factor XII).

Every service with a consumer offers them, with the same arguments and output, by adding
them to its command line: ``add_dlq_commands(commands, QueueSettings)``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
from typing import cast

from shared.config import ServiceSettings, load_settings
from shared.process import running
from shared.queue_settings import QueueSettings

log = logging.getLogger(__name__)


def add_dlq_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], settings_class: type[ServiceSettings]
) -> None:
    """``settings_class``: the service's settings of its worker's queue, a ``QueueSettings`` too
    (``class QueueSettings(NotifierSettings, queue_settings.QueueSettings)``)."""
    dlq = commands.add_parser("dlq", help="inspect or re-drive the worker's dead-letter queue (one-off)")
    dlq_commands = dlq.add_subparsers(dest="dlq_command", required=True, metavar="DLQ_COMMAND")
    listing = dlq_commands.add_parser("list", help="print dead-lettered messages without removing them")
    listing.add_argument("--limit", type=int, default=100)
    replay = dlq_commands.add_parser("replay", help="move dead-lettered messages back onto the worker's queue")
    replay.add_argument("--limit", type=int, default=1000)

    def run(arguments: argparse.Namespace) -> None:
        settings = load_settings(settings_class)
        # Not narrowed by isinstance: mypy holds that no class can be both (their __init__s
        # differ), though each service's QueueSettings is.
        queue_settings = cast(QueueSettings, settings)
        with running(settings):
            _run(
                arguments,
                queue_settings,
                connection_name=f"{settings.service_name}-dlq",
                queue_variable=settings_class.variable_names()["queue"],
            )

    dlq.set_defaults(run=run)


def _run(arguments: argparse.Namespace, settings: QueueSettings, *, connection_name: str, queue_variable: str) -> None:
    # Imported here: every process of the service imports its command line (and so this module).
    from shared.messaging.dead_letters import (  # noqa: PLC0415
        NoDeadLetterQueue,
        list_dead_letters,
        replay_dead_letters,
    )

    url, queue = settings.amqp_url.get_secret_value(), settings.queue
    try:
        if arguments.dlq_command == "list":
            listed = asyncio.run(list_dead_letters(url, queue, arguments.limit, connection_name=connection_name))
            for record in listed:
                # The command's output, one JSON object a line, beside the JSON log lines.
                print(json.dumps({"dead_letter": record}, default=str))
        else:
            replayed = asyncio.run(replay_dead_letters(url, queue, arguments.limit, connection_name=connection_name))
            log.info("replay done", extra={"replayed": replayed, "queue": queue})
    except NoDeadLetterQueue as exc:
        # An operator's mistake: one clear line and exit status 1, not a traceback.
        problem = f"{exc}: is {queue_variable} right, and has the worker run once?"
        log.error(problem)  # noqa: TRY400 - the message is the whole story
        raise SystemExit(1) from None
