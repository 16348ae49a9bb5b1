"""PostgreSQL access: a pool per process and the one-off migration runner."""

from shared.db.migrations import Migration, MigrationError, apply_migrations, discover
from shared.db.pool import Pool, close_pool, postgres_pool

__all__ = ["Migration", "MigrationError", "Pool", "apply_migrations", "close_pool", "discover", "postgres_pool"]
