from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from shared.db import migrate_package

from .support import Names

if TYPE_CHECKING:
    # Imported by pytest through pytest_plugins below; importing it here first would
    # stop pytest from rewriting its assertions.
    from shared.testing.amqp import AmqpNames

pytest_plugins = ["shared.testing.plugin"]


@pytest.fixture
async def orders_database_url(database_url: str) -> str:
    """A fresh database with the orders schema applied, as `orders migrate` would."""
    await migrate_package(database_url, "orders")
    return database_url


@pytest.fixture
def names(amqp_names: AmqpNames) -> Names:
    return Names(amqp_names)
