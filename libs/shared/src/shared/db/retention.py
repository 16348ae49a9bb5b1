"""``<service> prune``: the one-off that deletes the rows a service keeps only so that a
redelivered event changes nothing (an inbox, sent notifications, published outbox rows), once
they are older than its retention (factor XII).

Those tables grow with every order and are read only to recognise a repeat. Past the
retention a repeat is no longer recognised, so the retention must outlast anything that can
bring an event back: a redelivery, a dead-letter replay, an outbox re-drive. Deleted in
batches, each its own short transaction, so a prune never holds locks the pipeline waits on.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import cast

import asyncpg

from shared.config import ServiceSettings, load_settings
from shared.db.settings import PostgresSettings, RetentionSettings
from shared.process import running

log = logging.getLogger(__name__)

BATCH_ROWS = 10_000


@dataclass(frozen=True)
class Expiring:
    """Rows of ``table`` that may go once ``timestamp`` is older than the retention."""

    table: str
    timestamp: str


async def prune(url: str, expiring: Sequence[Expiring], *, older_than: timedelta, dry_run: bool) -> dict[str, int]:
    """Delete (or, with ``dry_run``, count) each table's rows past ``older_than``; how many."""
    connection = await asyncpg.connect(url)
    try:
        return {
            rows.table: await (_count if dry_run else _delete)(connection, rows, older_than.total_seconds())
            for rows in expiring
        }
    finally:
        await connection.close()


# The table and column names come from the service's code, never from input.
async def _count(connection: asyncpg.Connection[asyncpg.Record], rows: Expiring, seconds: float) -> int:
    return int(
        await connection.fetchval(
            f"SELECT count(*) FROM {rows.table} "  # noqa: S608
            f"WHERE {rows.timestamp} < clock_timestamp() - make_interval(secs => $1)",
            seconds,
        )
    )


async def _delete(connection: asyncpg.Connection[asyncpg.Record], rows: Expiring, seconds: float) -> int:
    deleted = 0
    while True:
        status = await connection.execute(
            f"DELETE FROM {rows.table} WHERE ctid = ANY(ARRAY("  # noqa: S608
            f"SELECT ctid FROM {rows.table} "
            f"WHERE {rows.timestamp} < clock_timestamp() - make_interval(secs => $1) LIMIT $2))",
            seconds,
            BATCH_ROWS,
        )
        batch = int(status.split()[-1])
        deleted += batch
        if batch < BATCH_ROWS:
            return deleted


def add_prune_command(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    settings_class: type[ServiceSettings],
    expiring: Sequence[Expiring],
) -> None:
    """``settings_class``: PostgresSettings and RetentionSettings too (the service's ``PruneSettings``)."""
    pruning = commands.add_parser(
        "prune",
        help=f"delete {', '.join(rows.table for rows in expiring)} rows older than the retention (one-off)",
    )
    pruning.add_argument("--dry-run", action="store_true", help="count what would go; delete nothing")

    def run(arguments: argparse.Namespace) -> None:
        settings = load_settings(settings_class)
        # Not narrowed by isinstance: mypy holds that no class can be all three.
        database, retention = cast(PostgresSettings, settings), cast(RetentionSettings, settings)
        with running(settings):
            try:
                counts = asyncio.run(
                    prune(
                        database.database_url.get_secret_value(),
                        expiring,
                        older_than=timedelta(days=retention.retention_days),
                        dry_run=arguments.dry_run,
                    )
                )
            except (OSError, asyncpg.PostgresError):
                log.exception("prune failed; what was deleted before stays deleted")
                raise SystemExit(1) from None
            # The command's output, one JSON object, beside the JSON log lines.
            print(json.dumps({"would_delete" if arguments.dry_run else "deleted": counts}))
            log.info("prune done", extra={"counts": counts, "retention_days": retention.retention_days})

    pruning.set_defaults(run=run)
