"""The body of every service's one-off ``migrate`` command (factor XII)."""

from __future__ import annotations

import asyncio
import logging
import re
from importlib.resources import files
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from shared.db.migrations import Migration, apply_migrations, discover

log = logging.getLogger(__name__)

_SAFE_NAME = re.compile(r"^[A-Za-z0-9_]{1,63}$")


async def ensure_database(url: str) -> bool:
    """Create the database ``url`` names if it is missing; True if it was created.

    For development and CI, where one server hosts every service's database. In
    production databases are provisioned, and ``migrate`` runs without this.
    """
    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    if not _SAFE_NAME.match(name):
        raise ValueError("the database name must be 1-63 letters, digits or underscores")
    admin = await asyncpg.connect(urlunsplit(parts._replace(path="/postgres")))
    try:
        if await admin.fetchval("SELECT true FROM pg_database WHERE datname = $1", name):
            return False
        try:
            await admin.execute(f'CREATE DATABASE "{name}"')
        except asyncpg.DuplicateDatabaseError:
            return False  # created meanwhile by a concurrent run
        return True
    finally:
        await admin.close()


async def migrate_package(url: str, package: str) -> list[Migration]:
    """Apply the ``migrations`` folder shipped inside ``package``; what this run applied."""
    return await apply_migrations(url, discover(files(package) / "migrations"))


def migrate(url: str, package: str, *, create_database: bool = False) -> None:
    """Apply ``package``'s migrations folder to ``url``; exit 1 with the reason logged on failure."""

    async def run() -> list[str]:
        if create_database and await ensure_database(url):
            log.info("database created")
        applied = await migrate_package(url, package)
        return [f"{migration.version:04d}_{migration.name}" for migration in applied]

    try:
        applied = asyncio.run(run())
    except Exception:
        log.exception("migration failed")
        raise SystemExit(1) from None
    log.info("migrations done", extra={"applied": applied})
