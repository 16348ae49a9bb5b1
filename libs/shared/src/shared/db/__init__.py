"""PostgreSQL access: a pool per process and the one-off migration runner."""

from shared.db.command import ensure_database, migrate, migrate_package
from shared.db.migrations import Migration, MigrationError, apply_migrations, discover
from shared.db.pool import DatabaseTimeout, Pool, PoolConnection, close_pool, pool_for, postgres_pool
from shared.db.settings import PostgresSettings, RetentionSettings
from shared.db.tracing import db_span
from shared.db.unavailable import DATABASE_OUTAGE, UNAVAILABLE_ERRORS, database_unavailable_middleware

__all__ = [
    "DATABASE_OUTAGE",
    "UNAVAILABLE_ERRORS",
    "DatabaseTimeout",
    "Migration",
    "MigrationError",
    "Pool",
    "PoolConnection",
    "PostgresSettings",
    "RetentionSettings",
    "apply_migrations",
    "close_pool",
    "database_unavailable_middleware",
    "db_span",
    "discover",
    "ensure_database",
    "migrate",
    "migrate_package",
    "pool_for",
    "postgres_pool",
]
