"""`prune`: rows past the retention go, in batches; newer rows and a dry run change nothing."""

from __future__ import annotations

from datetime import timedelta

import pytest

from shared.db import retention
from shared.db.retention import Expiring, prune
from shared.testing import execute, fetchval

SEEN = Expiring("seen", "received_at")


@pytest.fixture
async def seen(database_url: str) -> str:
    """25 rows received 40 days ago, 5 received now."""
    await execute(
        database_url,
        """
        CREATE TABLE seen (event_id int PRIMARY KEY, received_at timestamptz NOT NULL);
        INSERT INTO seen SELECT n, now() - interval '40 days' FROM generate_series(1, 25) AS n;
        INSERT INTO seen SELECT n, now() FROM generate_series(26, 30) AS n;
        """,
    )
    return database_url


async def test_a_dry_run_counts_what_would_go_and_deletes_nothing(seen: str) -> None:
    assert await prune(seen, [SEEN], older_than=timedelta(days=30), dry_run=True) == {"seen": 25}
    assert await fetchval(seen, "SELECT count(*) FROM seen") == 30


async def test_rows_past_the_retention_go_in_batches_and_newer_ones_stay(
    seen: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(retention, "BATCH_ROWS", 10)

    assert await prune(seen, [SEEN], older_than=timedelta(days=30), dry_run=False) == {"seen": 25}

    assert await fetchval(seen, "SELECT min(event_id) FROM seen") == 26
    assert await fetchval(seen, "SELECT count(*) FROM seen") == 5
    assert await prune(seen, [SEEN], older_than=timedelta(days=30), dry_run=False) == {"seen": 0}
