"""Plain, versioned .sql migrations, applied only by an explicit one-off command (factor XII).

Files are named ``NNNN_description.sql`` and applied in version order, each in its own
transaction together with its row in ``schema_migrations``. A PostgreSQL advisory lock
serialises concurrent runs (two deploys starting at once), so every migration is applied
exactly once. An applied file that has since been edited is refused: history is append-only.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from importlib.resources.abc import Traversable

import asyncpg

log = logging.getLogger(__name__)

_FILE_NAME = re.compile(r"^(?P<version>\d{4})_(?P<name>[a-z0-9_]+)\.sql$")

# Any constant will do; advisory locks are scoped to the current database.
_LOCK_KEY = 0x646F7A656E  # "dozen"

_CREATE_HISTORY = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer     PRIMARY KEY,
    name       text        NOT NULL,
    checksum   text        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


class MigrationError(Exception):
    pass


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def discover(directory: Traversable) -> list[Migration]:
    """Every ``NNNN_name.sql`` in ``directory`` (a folder or package resource), in order."""
    migrations = []
    for entry in directory.iterdir():
        if not entry.name.endswith(".sql"):
            continue
        match = _FILE_NAME.match(entry.name)
        if match is None:
            raise MigrationError(f"{entry.name}: migration files are named NNNN_lower_snake.sql")
        migrations.append(Migration(int(match["version"]), match["name"], entry.read_text("utf-8")))
    migrations.sort(key=lambda migration: migration.version)
    versions = [migration.version for migration in migrations]
    duplicates = sorted({version for version in versions if versions.count(version) > 1})
    if duplicates:
        raise MigrationError(f"duplicate migration versions: {duplicates}")
    return migrations


async def apply_migrations(url: str, migrations: list[Migration]) -> list[Migration]:
    """Apply what is not applied yet; returns what this run applied (empty when up to date)."""
    connection = await asyncpg.connect(url)
    try:
        # Session-level lock: held across the per-migration transactions below.
        await connection.execute("SELECT pg_advisory_lock($1)", _LOCK_KEY)
        try:
            await connection.execute(_CREATE_HISTORY)
            applied = {
                row["version"]: row["checksum"]
                for row in await connection.fetch("SELECT version, checksum FROM schema_migrations")
            }
            _refuse_edited_history(migrations, applied)
            pending = [migration for migration in migrations if migration.version not in applied]
            for migration in pending:
                async with connection.transaction():
                    await connection.execute(migration.sql)
                    await connection.execute(
                        "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                        migration.version,
                        migration.name,
                        migration.checksum,
                    )
                log.info("migration applied", extra={"version": migration.version, "migration": migration.name})
            return pending
        finally:
            await connection.execute("SELECT pg_advisory_unlock($1)", _LOCK_KEY)
    finally:
        await connection.close()


def _refuse_edited_history(migrations: list[Migration], applied: dict[int, str]) -> None:
    edited = [
        f"{migration.version:04d}_{migration.name}"
        for migration in migrations
        if migration.version in applied and applied[migration.version] != migration.checksum
    ]
    if edited:
        raise MigrationError(f"applied migrations were edited since (add a new one instead): {', '.join(edited)}")
