"""Contract §14: every configuration mistake is one line on stderr naming what to fix, and a
non-zero exit, never a traceback; `serve` says nothing about listening when it cannot."""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import jwt
import pytest
from cryptography.fernet import Fernet

from server.settings import load_settings
from tests.delivery.helpers import free_port
from tests.test_cli_settings import clean_env, run_cli


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A 127.0.0.1 port another socket is listening on for the whole test."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


TABLES = "select name from sqlite_master"


def unreachable_pg() -> str:
    return f"postgresql+asyncpg://someone:hunter2@127.0.0.1:{free_port()}/nothing"


PORTLESS_HOSTS = "postgresql+asyncpg://someone:hunter2@/nothing?host=127.0.0.1,127.0.0.2"


# (case id, CLI args, environment, what the one line must name)
CASES: list[tuple[str, list[str], Callable[[], dict[str, str]], str]] = [
    ("leeway", ["serve", "--dev"], lambda: {"JWT_LEEWAY_SECONDS": "999"}, "JWT_LEEWAY_SECONDS"),
    ("app-env", ["serve"], lambda: {"APP_ENV": "staging"}, "APP_ENV"),
    ("port-env", ["serve", "--dev"], lambda: {"PORT": "abc"}, "PORT"),
    ("db-url", ["serve", "--dev"], lambda: {"DATABASE_URL": "nonsense"}, "DATABASE_URL"),
    ("db-scheme", ["serve", "--dev"], lambda: {"DATABASE_URL": "mysql://x@y/z"}, "DATABASE_URL"),
    ("pg-down", ["serve", "--dev"], lambda: {"DATABASE_URL": unreachable_pg()}, "DATABASE_URL"),
    ("upgrade-db", ["db", "upgrade"], lambda: {"DATABASE_URL": "nonsense"}, "DATABASE_URL"),
    ("upgrade-pg", ["db", "upgrade"], lambda: {"DATABASE_URL": unreachable_pg()}, "DATABASE_URL"),
    # asyncpg's several hosts need a port each: SQLAlchemy refuses when it makes the engine.
    ("upgrade-hosts", ["db", "upgrade"], lambda: {"DATABASE_URL": PORTLESS_HOSTS}, "DATABASE_URL"),
    ("account", ["mint-token", "--dev", "--account", "abc"], dict, "--account"),
    ("user", ["mint-token", "--dev", "--user", "x1"], dict, "--user"),
    ("roles", ["mint-token", "--dev", "--admin", "--view-only", "--guest"], dict, "--"),
    ("bad-flag", ["serve", "--dev", "--port", "eighty"], dict, "--port"),
]


def assert_one_line(result: object, names: str) -> str:
    stderr: str = result.stderr  # type: ignore[attr-defined]
    assert result.returncode != 0, stderr  # type: ignore[attr-defined]
    assert "Traceback" not in stderr, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert names in lines[0], lines[0]
    return lines[0]


@pytest.mark.parametrize(
    ("args", "env", "names"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_a_configuration_mistake_is_one_line(
    tmp_path: Path, args: list[str], env: Callable[[], dict[str, str]], names: str
) -> None:
    result = run_cli(tmp_path, *args, **env())
    line = assert_one_line(result, names)
    assert "listening" not in result.stdout
    assert "hunter2" not in line  # a password in DATABASE_URL is never echoed


def test_a_port_in_use_is_one_line_before_listening(tmp_path: Path, busy_port: int) -> None:
    result = run_cli(tmp_path, "serve", "--dev", "--port", str(busy_port))
    assert_one_line(result, "PORT")
    assert "listening" not in result.stdout
    assert not (tmp_path / "var").exists(), "no dev secrets made for a server that never ran"


def test_mint_token_elsewhere_never_makes_a_second_set_of_dev_secrets(tmp_path: Path) -> None:
    """A token minted from another directory must verify on the running dev server."""
    server_dir, elsewhere = tmp_path / "server", tmp_path / "elsewhere"
    elsewhere.mkdir()
    server_secret = load_settings(dev=True, var_dir=server_dir / "var").client_secrets[0]

    result = run_cli(elsewhere, "mint-token", "--dev")
    line = assert_one_line(result, "VAR_DIR")
    assert str(elsewhere / "var") in line
    assert not (elsewhere / "var").exists()

    result = run_cli(elsewhere, "mint-token", "--dev", VAR_DIR=str(server_dir / "var"))
    assert result.returncode == 0, result.stderr
    jwt.decode(result.stdout.strip(), server_secret, algorithms=["HS256"])


def test_dev_database_follows_var_dir(tmp_path: Path) -> None:
    var = tmp_path / "elsewhere" / "var"
    result = run_cli(tmp_path, "db", "upgrade", "--dev", VAR_DIR=str(var))
    assert result.returncode == 0, result.stderr
    assert (var / "monday-notify.db").is_file()
    assert not (tmp_path / "var").exists()


def test_var_dir_in_a_dotenv_file_is_read_like_every_setting(tmp_path: Path) -> None:
    """README: "a `.env` file is read too". `.env` is read from the current directory (it
    cannot come from VAR_DIR, which it may set); the environment wins over it."""
    server_var, other_var = tmp_path / "server" / "var", tmp_path / "other" / "var"
    (tmp_path / ".env").write_text(f"VAR_DIR={server_var}\n")
    result = run_cli(tmp_path, "db", "upgrade", "--dev")
    assert result.returncode == 0, result.stderr
    assert (server_var / "monday-notify.db").is_file()
    assert not (tmp_path / "var").exists()

    server_secret = load_settings(dev=True, var_dir=server_var).client_secrets[0]
    minted = run_cli(tmp_path, "mint-token", "--dev")
    assert minted.returncode == 0, minted.stderr
    jwt.decode(minted.stdout.strip(), server_secret, algorithms=["HS256"])

    result = run_cli(tmp_path, "db", "upgrade", "--dev", VAR_DIR=str(other_var))
    assert result.returncode == 0, result.stderr
    assert (other_var / "monday-notify.db").is_file()


def test_a_sqlite_file_in_a_missing_folder_names_the_folder(tmp_path: Path) -> None:
    """The documented default DATABASE_URL is relative (var/monday-notify.db): wherever ./var
    does not exist, the line names that folder rather than "cannot be reached"."""
    production = {
        "MONDAY_CLIENT_ID": "1",
        "MONDAY_CLIENT_SECRET": "secret",
        "ENCRYPTION_KEYS": Fernet.generate_key().decode(),
    }
    result = run_cli(tmp_path, "serve", "--port", "0", **production)
    line = assert_one_line(result, f"{tmp_path / 'var'}, a folder that does not exist")
    assert "cannot be reached" not in line
    url = f"sqlite+aiosqlite:///{tmp_path / 'nowhere' / 'prod.db'}"
    result = run_cli(tmp_path, "db", "upgrade", DATABASE_URL=url)
    assert_one_line(result, f"{tmp_path / 'nowhere'}, a folder that does not exist")
    assert not (tmp_path / "var").exists() and not (tmp_path / "nowhere").exists()


def test_db_upgrade_needs_only_the_database_url(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'prod.db'}"
    result = run_cli(tmp_path, "db", "upgrade", APP_ENV="production", DATABASE_URL=url)
    assert result.returncode == 0, result.stderr
    tables = {r[0] for r in sqlite3.connect(tmp_path / "prod.db").execute(TABLES)}
    assert "credentials" in tables


def test_keys_rotate_needs_no_oauth_client_secret(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'prod.db'}"
    assert run_cli(tmp_path, "db", "upgrade", DATABASE_URL=url).returncode == 0
    missing = run_cli(tmp_path, "keys", "rotate", APP_ENV="production", DATABASE_URL=url)
    assert_one_line(missing, "ENCRYPTION_KEYS")
    key = Fernet.generate_key().decode()
    result = run_cli(
        tmp_path, "keys", "rotate", APP_ENV="production", DATABASE_URL=url, ENCRYPTION_KEYS=key
    )
    assert result.returncode == 0, result.stderr
    assert "re-encrypted 0 stored credential(s)" in result.stdout


def test_a_reader_that_goes_away_gets_no_traceback(tmp_path: Path) -> None:
    """`monday-notify manifest render | head -1`: the reader is gone before the command writes
    (its end of the pipe is closed first, so every write fails), and the command stops
    quietly with a non-zero exit instead of printing a BrokenPipeError traceback."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "server", "manifest", "render"],
            cwd=tmp_path,
            env=clean_env(tmp_path),
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
        )
    finally:
        os.close(write_end)
    assert done.returncode == 1
    assert done.stderr == ""
