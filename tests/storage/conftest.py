"""Fixtures shared by the storage tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from server.storage.db import create_engine
from server.storage.migrate import upgrade
from tests.pg import fresh_pg_database, sqlite_url


@pytest.fixture
async def sqlite_file(tmp_path: Path) -> AsyncIterator[tuple[AsyncEngine, Path]]:
    """A migrated SQLite database file and its engine (with the writer thread, the reader
    pool and the checkpointer a file database gets), disposed after the test."""
    path = tmp_path / "store.db"
    await upgrade(sqlite_url(path))
    engine = create_engine(sqlite_url(path))
    yield engine, path
    await engine.dispose()


@pytest.fixture
async def pg_engine(pg_url: str) -> AsyncIterator[AsyncEngine]:
    """A migrated database of its own on the PostgreSQL test server, and its engine."""
    async with fresh_pg_database(pg_url) as url:
        await upgrade(url)
        engine = create_engine(url)
        yield engine
        await engine.dispose()
