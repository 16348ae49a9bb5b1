"""The migration runner against a real PostgreSQL, one fresh database per test."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import asyncpg
import pytest

from shared.db import MigrationError, apply_migrations, discover, ensure_database
from shared.testing import fetchval
from shared.testing.databases import with_database

# pg_sleep widens the window in which unserialised runners would both see version 2
# as pending; with the lock, only the first applies it and the counter says 1.
MIGRATIONS = {
    "0001_create_orders.sql": "CREATE TABLE orders (id uuid PRIMARY KEY, status text NOT NULL);",
    "0002_count_applications.sql": (
        "CREATE TABLE IF NOT EXISTS applications (n integer NOT NULL);\n"
        "SELECT pg_sleep(0.2);\n"
        "INSERT INTO applications VALUES (1);"
    ),
}


def write(directory: Path, files: dict[str, str]) -> Path:
    directory.mkdir(exist_ok=True)
    for name, sql in files.items():
        (directory / name).write_text(sql)
    return directory


async def test_applies_pending_migrations_in_order_then_nothing(database_url: str, tmp_path: Path) -> None:
    migrations = discover(write(tmp_path / "migrations", MIGRATIONS))

    first = await apply_migrations(database_url, migrations)
    second = await apply_migrations(database_url, migrations)

    assert [migration.version for migration in first] == [1, 2]
    assert second == []
    assert await fetchval(database_url, "SELECT count(*) FROM applications") == 1
    assert await fetchval(database_url, "SELECT array_agg(version ORDER BY version) FROM schema_migrations") == [1, 2]


async def test_concurrent_runs_apply_each_migration_exactly_once(database_url: str, tmp_path: Path) -> None:
    migrations = discover(write(tmp_path / "migrations", MIGRATIONS))

    results = await asyncio.gather(*(apply_migrations(database_url, migrations) for _ in range(5)))

    assert sorted(len(applied) for applied in results) == [0, 0, 0, 0, 2]
    assert await fetchval(database_url, "SELECT count(*) FROM applications") == 1


async def test_a_failing_migration_leaves_nothing_behind(database_url: str, tmp_path: Path) -> None:
    broken = MIGRATIONS | {"0003_broken.sql": "CREATE TABLE half (id int);\nSELECT no_such_function();"}
    migrations = discover(write(tmp_path / "migrations", broken))

    with pytest.raises(asyncpg.UndefinedFunctionError):
        await apply_migrations(database_url, migrations)

    assert await fetchval(database_url, "SELECT max(version) FROM schema_migrations") == 2
    assert await fetchval(database_url, "SELECT to_regclass('half')::text") is None


async def test_editing_an_applied_migration_is_refused(database_url: str, tmp_path: Path) -> None:
    directory = write(tmp_path / "migrations", MIGRATIONS)
    await apply_migrations(database_url, discover(directory))
    write(directory, {"0001_create_orders.sql": "CREATE TABLE orders (id bigint PRIMARY KEY);"})

    with pytest.raises(MigrationError, match="0001_create_orders"):
        await apply_migrations(database_url, discover(directory))


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"1_short.sql": "SELECT 1;"}, "NNNN_lower_snake.sql"),
        ({"0001_Upper.sql": "SELECT 1;"}, "NNNN_lower_snake.sql"),
        ({"0001_a.sql": "SELECT 1;", "0001_b.sql": "SELECT 1;"}, "duplicate migration versions: \\[1\\]"),
    ],
)
def test_badly_named_migration_files_are_refused(tmp_path: Path, files: dict[str, str], message: str) -> None:
    with pytest.raises(MigrationError, match=message):
        discover(write(tmp_path / "migrations", files))


async def test_ensure_database_creates_a_missing_database_once(postgres_server_url: str) -> None:
    name = f"test_ensure_{uuid.uuid4().hex[:8]}"
    url = with_database(postgres_server_url, name)
    try:
        assert await ensure_database(url) is True
        assert await ensure_database(url) is False
        assert await fetchval(url, "SELECT current_database()") == name
    finally:
        await fetchval(postgres_server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def test_ensure_database_refuses_names_it_would_have_to_quote(postgres_server_url: str) -> None:
    with pytest.raises(ValueError, match="letters, digits or underscores"):
        await ensure_database(with_database(postgres_server_url, 'x"; DROP DATABASE postgres; --'))
