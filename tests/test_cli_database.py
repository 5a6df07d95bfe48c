"""Contract §14: a database the command cannot work with is one line, exit 2, before `serve`
says it is listening: a schema that is not migrated (MIGRATE_ON_START=false), a migration
revision this release does not know (a rolled-back deploy). Real CLI subprocesses, on SQLite
and PostgreSQL."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

from cryptography.fernet import Fernet
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from server.installations.crypto import CredentialCipher
from server.settings import load_settings
from server.storage.db import create_engine
from server.storage.installations import SqlCredentials
from server.storage.migrate import head_revision, upgrade
from server.storage.preflight import CREDENTIAL_SAMPLE
from tests.conftest import CLIENT_ID, CLIENT_SECRET, ENCRYPTION_KEY
from tests.test_cli_errors import assert_one_line
from tests.test_cli_settings import clean_env, run_cli

UNKNOWN = "9999"  # a revision no release of these migrations has


def production(url: str, **extra: str) -> dict[str, str]:
    return {
        "APP_ENV": "production",
        "DATABASE_URL": url,
        "MONDAY_CLIENT_ID": CLIENT_ID,
        "MONDAY_CLIENT_SECRET": CLIENT_SECRET,
        "ENCRYPTION_KEYS": ENCRYPTION_KEY,
        **extra,
    }


def touch_sqlite(url: str) -> None:
    """An empty database file where `url` points (PostgreSQL's test database exists already)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        sqlite3.connect(str(parsed.database)).close()


async def set_revision(url: str, revision: str) -> None:
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("UPDATE alembic_version SET version_num = :r"), {"r": revision})
    finally:
        await engine.dispose()


async def store_credentials(url: str, key: str, users: range) -> None:
    """OAuth credentials of `users` in account 1001, encrypted with `key` (as a server would)."""
    engine = create_engine(url)
    try:
        store = SqlCredentials(engine, CredentialCipher([key]))
        for user in users:
            await store.put(
                account_id="1001",
                user_id=str(user),
                kind="oauth",
                secret=f"access-{user}",
                refresh_secret=f"refresh-{user}",
            )
    finally:
        await engine.dispose()


def serve_until_listening(cwd: Path, env: dict[str, str], *flags: str) -> str:
    """Start `serve`, wait for its first line, stop it; what it printed first."""
    process = subprocess.Popen(
        [sys.executable, "-m", "server", "serve", "--port", "0", *flags],
        cwd=cwd,
        env=clean_env(cwd, **env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert process.stdout is not None
        for line in process.stdout:  # the JSON log lines come first; the condition is the line
            if "listening on" in line or "monday-notify:" in line:
                return line
        return "exited: " + str(process.wait())
    finally:
        if process.poll() is None:
            process.terminate()
        process.wait(timeout=30)


async def test_serve_without_migrating_refuses_an_empty_database(
    tmp_path: Path, empty_database_url: str
) -> None:
    touch_sqlite(empty_database_url)
    env = production(empty_database_url, MIGRATE_ON_START="false")
    result = run_cli(tmp_path, "serve", "--port", "0", **env)
    line = assert_one_line(result, "monday-notify db upgrade")
    assert "no schema" in line and head_revision() in line
    assert "listening" not in result.stdout


async def test_serve_without_migrating_refuses_an_older_revision(
    tmp_path: Path, empty_database_url: str
) -> None:
    older = f"{int(head_revision()) - 1:04d}"
    await upgrade(empty_database_url, older)
    env = production(empty_database_url, MIGRATE_ON_START="false")
    result = run_cli(tmp_path, "serve", "--port", "0", **env)
    line = assert_one_line(result, "monday-notify db upgrade")
    assert f"at revision {older}" in line
    assert "listening" not in result.stdout


async def test_serve_without_migrating_listens_on_a_migrated_database(
    tmp_path: Path, database_url: str
) -> None:
    first = serve_until_listening(tmp_path, production(database_url, MIGRATE_ON_START="false"))
    assert "listening on" in first, first


async def test_a_revision_from_a_newer_release_is_one_line(
    tmp_path: Path, database_url: str
) -> None:
    """A rolled-back deploy: a newer release migrated the database. Neither `serve` (whether
    it migrates or not) nor `db upgrade` can do anything with it, and each says so."""
    await set_revision(database_url, UNKNOWN)
    for args, extra in [
        (["serve", "--port", "0"], {"MIGRATE_ON_START": "false"}),
        (["serve", "--port", "0"], {}),
        (["db", "upgrade"], {}),
    ]:
        result = run_cli(tmp_path, *args, **production(database_url, **extra))
        line = assert_one_line(result, f"revision {UNKNOWN}")
        assert "newer release" in line, args
        assert "listening" not in result.stdout


def test_serve_without_migrating_never_makes_a_sqlite_file(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'typo.db'}"
    result = run_cli(tmp_path, "serve", "--port", "0", **production(url, MIGRATE_ON_START="false"))
    line = assert_one_line(result, "does not exist")
    assert str(tmp_path / "typo.db") in line and "monday-notify db upgrade" in line
    assert not (tmp_path / "typo.db").exists()


async def test_serve_refuses_keys_that_cannot_open_the_stored_credentials(
    tmp_path: Path, database_url: str
) -> None:
    """The old key was dropped before `keys rotate` (or an instance kept the old key alone):
    the server would be "ready" and every send a 500. It refuses, counting what it tried."""
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    await store_credentials(database_url, old, range(11, 13))
    await store_credentials(database_url, new, range(13, 14))
    for migrate in ("true", "false"):
        env = production(database_url, ENCRYPTION_KEYS=new, MIGRATE_ON_START=migrate)
        result = run_cli(tmp_path, "serve", "--port", "0", **env)
        line = assert_one_line(result, "ENCRYPTION_KEYS cannot decrypt 2 of the 3 stored")
        assert "back into ENCRYPTION_KEYS" in line and "How credentials are protected" in line
        assert old not in line and new not in line
        assert "listening" not in result.stdout
    first = serve_until_listening(
        tmp_path, production(database_url, ENCRYPTION_KEYS=f"{new},{old}")
    )
    assert "listening on" in first, first


async def test_serve_tries_a_bounded_sample_of_credentials(
    tmp_path: Path, database_url: str
) -> None:
    """Start-up stays quick with many credentials; the oldest and the newest are tried."""
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    await store_credentials(database_url, old, range(100, 100 + CREDENTIAL_SAMPLE + 10))
    await store_credentials(database_url, new, range(1000, 1001))
    result = run_cli(
        tmp_path, "serve", "--port", "0", **production(database_url, ENCRYPTION_KEYS=old)
    )
    assert_one_line(result, f"cannot decrypt 1 of the {CREDENTIAL_SAMPLE} stored credential(s)")


async def test_serve_dev_names_the_dev_secrets_whose_key_cannot_open_the_credentials(
    tmp_path: Path,
) -> None:
    """Development takes no ENCRYPTION_KEYS: its key is the one in var/dev-secrets.json."""
    load_settings(dev=True, var_dir=tmp_path / "var")  # what an earlier `serve --dev` left
    url = f"sqlite+aiosqlite:///{tmp_path / 'var' / 'monday-notify.db'}"
    await upgrade(url)
    await store_credentials(url, Fernet.generate_key().decode(), range(11, 12))
    result = run_cli(tmp_path, "serve", "--dev", "--port", "0")
    line = assert_one_line(result, str(tmp_path / "var" / "dev-secrets.json"))
    assert "cannot decrypt 1 of the 1" in line
