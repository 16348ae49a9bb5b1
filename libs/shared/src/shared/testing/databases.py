"""Scratch databases on a real PostgreSQL server: created empty, always dropped afterwards."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import urlsplit, urlunsplit

import asyncpg


def with_database(server_url: str, database: str) -> str:
    """``server_url`` pointing at ``database`` instead."""
    parts = urlsplit(server_url)
    return urlunsplit(parts._replace(path=f"/{database}"))


async def create_database(server_url: str, name: str) -> str:
    """Create the empty database ``name``; its URL."""
    admin = await asyncpg.connect(server_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return with_database(server_url, name)


async def drop_databases(server_url: str, names: list[str]) -> None:
    admin = await asyncpg.connect(server_url)
    try:
        for name in names:
            # FORCE: a process under test may still hold a connection after a failure.
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@asynccontextmanager
async def scratch_databases(server_url: str, names: list[str]) -> AsyncIterator[list[str]]:
    """The databases ``names``, new and empty, for as long as the block runs; their URLs."""
    created: list[str] = []
    try:
        urls = []
        for name in names:
            urls.append(await create_database(server_url, name))
            created.append(name)
        yield urls
    finally:
        await drop_databases(server_url, created)
