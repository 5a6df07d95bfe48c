"""Database fixtures for both engines (a pytest plugin, registered in tests/conftest.py).

- `pg_url` (session): the PostgreSQL server given in DATABASE_URL_PG (`make test` starts one
  with scripts/pg-local.sh). Unset: the test fails under CI=true, and is skipped elsewhere.
- `empty_database_url`: a fresh, empty database per test, parametrised over
  ["sqlite", "postgres"]: a SQLite file in tmp_path, or a `CREATE DATABASE test_<random>` on
  the PostgreSQL server, dropped after the test.
- `database_url`: the same, with every migration applied. Store tests take this one, and so
  run once per engine.
- `fresh_pg_database(admin_url)`: the same on demand, for tests that need several databases.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import warnings
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from sqlalchemy.engine import URL, make_url

from server.storage.migrate import upgrade

PG_ENV = "DATABASE_URL_PG"

ENGINES = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
]


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"true", "1", "yes"}


def _asyncpg_url(url: str) -> URL:
    """`url` with the asyncpg driver (a plain `postgresql://` URL is accepted too)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql":
        raise ValueError(f"{PG_ENV} must be a postgresql URL, not {parsed.drivername}")
    return parsed.set(drivername="postgresql+asyncpg")


def _dsn(url: URL) -> str:
    """A libpq-style DSN for asyncpg itself."""
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def pg_url() -> str:
    """The SQLAlchemy URL of the PostgreSQL test server (its role may CREATE DATABASE)."""
    url = os.environ.get(PG_ENV, "").strip()
    if not url:
        message = (
            f"{PG_ENV} is not set: run `make test` (it starts a local PostgreSQL with "
            "scripts/pg-local.sh), or `export DATABASE_URL_PG=$(bash scripts/pg-local.sh start)`"
        )
        if in_ci():
            pytest.fail(f"{message}. CI=true, so PostgreSQL tests fail instead of skipping.")
        pytest.skip(message)
    return _asyncpg_url(url).render_as_string(hide_password=False)


@asynccontextmanager
async def fresh_pg_database(admin_url: str) -> AsyncIterator[str]:
    """Create `test_<random>` on the server of `admin_url`, yield its URL, drop it after."""
    admin = _asyncpg_url(admin_url)
    name = f"test_{secrets.token_hex(8)}"
    conn = await asyncpg.connect(_dsn(admin))
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
        try:
            yield admin.set(database=name).render_as_string(hide_password=False)
        finally:
            await _drop(conn, name)
    finally:
        await conn.close()


async def _drop(conn: Any, name: str) -> None:
    """Drop a per-test database; FORCE ends connections a test forgot to close.

    A background process of the server (autovacuum, another role's session) can make FORCE
    fail for a moment; the database lives in a throw-away server, so a few retries and then
    a warning are enough: it is cleanup, not the behaviour under test.
    """
    for attempt in range(5):
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            return
        except Exception as error:  # asyncpg's errors have no common public base here
            if attempt == 4:
                warnings.warn(f"could not drop test database {name}: {error}", stacklevel=1)
                return
            await asyncio.sleep(0.5)


def sqlite_url(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path}"


@pytest.fixture(params=ENGINES)
async def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A fresh database without tables, once per engine."""
    if request.param == "sqlite":
        yield sqlite_url(tmp_path / "store.db")
        return
    admin_url: str = request.getfixturevalue("pg_url")
    async with fresh_pg_database(admin_url) as url:
        yield url


@pytest.fixture
async def database_url(empty_database_url: str) -> str:
    """A fresh database with every migration applied, once per engine."""
    await upgrade(empty_database_url)
    return empty_database_url


@pytest.fixture
async def sqlite_database_url(tmp_path: Path) -> str:
    """A fresh SQLite database with every migration applied, for SQLite-only behaviour
    (query plans, the process-wide writer): no PostgreSQL variant that would only skip."""
    url = sqlite_url(tmp_path / "store.db")
    await upgrade(url)
    return url
