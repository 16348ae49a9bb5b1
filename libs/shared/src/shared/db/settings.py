"""The PostgreSQL settings of a process that has a database, under its service's prefix."""

from __future__ import annotations

from pydantic import BaseModel, Field

from shared.config import PostgresUrl


class PostgresSettings(BaseModel):
    """Mixed into a process type's settings: ``class WebSettings(OrdersSettings, PostgresSettings)``
    reads ORDERS_DATABASE_URL, ORDERS_DB_POOL_MAX_SIZE, and so on."""

    database_url: PostgresUrl
    db_pool_min_size: int = Field(1, ge=0, le=100)
    db_pool_max_size: int = Field(10, ge=1, le=100)
    # Also the connect timeout: a request should hear "unavailable" within it.
    db_command_timeout_seconds: float = Field(5.0, gt=0)
    # The longest anyone waits for a pooled connection (a request never past its deadline):
    # past it, a web process answers 503 with Retry-After rather than queue without end.
    db_pool_acquire_timeout_seconds: float = Field(1.0, gt=0, le=30)


class RetentionSettings(BaseModel):
    """Mixed into the settings of a service's ``prune`` one-off (shared.db.retention):
    <SERVICE>_RETENTION_DAYS."""

    # A month: far beyond the redelivery limit and the time a dead letter waits for its replay.
    retention_days: float = Field(30.0, ge=1, le=3650)
