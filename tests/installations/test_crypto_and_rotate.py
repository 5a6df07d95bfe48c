"""Encryption at rest and `monday-notify keys rotate` (contract §2, §4)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from pydantic import SecretStr
from sqlalchemy import text

from server.installations.crypto import CipherError, CredentialCipher
from server.settings import Settings
from server.storage.db import create_engine
from server.storage.installations import SqlCredentials
from server.storage.migrate import upgrade
from tests.conftest import make_settings
from tests.installations.helpers import query

ROOT = Path(__file__).resolve().parents[2]


def test_the_first_key_encrypts_and_every_key_decrypts() -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    token_old = CredentialCipher([old]).encrypt("secret-value")
    both = CredentialCipher([new, old])
    assert both.decrypt(token_old) == "secret-value"
    token_new = both.encrypt("secret-value")
    assert "secret-value" not in token_new
    assert CredentialCipher([new]).decrypt(token_new) == "secret-value"
    with pytest.raises(CipherError):
        CredentialCipher([old]).decrypt(token_new)
    rotated = both.rotate(token_old)
    assert CredentialCipher([new]).decrypt(rotated) == "secret-value"
    assert old not in repr(both)
    assert new not in repr(both)


def test_a_cipher_needs_a_key() -> None:
    with pytest.raises(ValueError, match="ENCRYPTION_KEYS"):
        CredentialCipher([])


def run_cli(args: list[str], *, env: dict[str, str], cwd: Path) -> Any:
    """`python -m server ...` in `cwd` (no stray .env) with exactly `env`."""
    return subprocess.run(
        [sys.executable, "-m", "server", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def _store(settings: Settings, **values: str | None) -> None:
    await upgrade(settings.database_url)
    engine = create_engine(settings.database_url)
    try:
        await SqlCredentials(engine, CredentialCipher(settings.fernet_keys)).put(
            account_id="1001",
            user_id=str(values["user"]),
            kind="oauth",
            secret=str(values["secret"]),
            refresh_secret=values.get("refresh"),
        )
    finally:
        await engine.dispose()


async def _read(settings: Settings, user: str) -> tuple[str, str | None]:
    engine = create_engine(settings.database_url)
    try:
        credential = await SqlCredentials(engine, CredentialCipher(settings.fernet_keys)).get(
            "1001", user, "oauth"
        )
    finally:
        await engine.dispose()
    assert credential is not None
    return credential.secret, credential.refresh_secret


async def test_keys_rotate_re_encrypts_everything_so_the_old_key_can_go(
    tmp_path: Path,
) -> None:
    old_key, new_key = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    with_old = make_settings(tmp_path, encryption_keys=SecretStr(old_key))
    await _store(with_old, user="11", secret="access-token-one", refresh="refresh-token-one")
    await _store(with_old, user="12", secret="access-token-two", refresh=None)
    before = query(with_old, "SELECT secret_encrypted, refresh_encrypted FROM credentials")

    env = {
        **os.environ,
        "APP_ENV": "production",
        "DATABASE_URL": with_old.database_url,
        "ENCRYPTION_KEYS": f"{new_key},{old_key}",
        "MONDAY_CLIENT_ID": "cli-test",
        "MONDAY_CLIENT_SECRET": "cli-test-secret",
    }
    result = run_cli(["keys", "rotate"], env={**env, "PYTHONPATH": str(ROOT)}, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "re-encrypted 2 stored credential(s)" in result.stdout
    assert old_key not in result.stdout + result.stderr

    after = query(with_old, "SELECT secret_encrypted, refresh_encrypted FROM credentials")
    assert after != before
    only_new = make_settings(tmp_path, encryption_keys=SecretStr(new_key))
    assert await _read(only_new, "11") == ("access-token-one", "refresh-token-one")
    assert await _read(only_new, "12") == ("access-token-two", None)
    with pytest.raises(CipherError):
        await _read(with_old, "11")  # the old key alone no longer opens anything


async def _ciphertexts(url: str) -> list[tuple[Any, ...]]:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            result = await conn.execute(
                text("SELECT secret_encrypted, refresh_encrypted FROM credentials ORDER BY id")
            )
            return [tuple(row) for row in result]
    finally:
        await engine.dispose()


def _production(url: str, keys: str) -> dict[str, str]:
    return {
        **os.environ,
        "APP_ENV": "production",
        "DATABASE_URL": url,
        "ENCRYPTION_KEYS": keys,
        "PYTHONPATH": str(ROOT),
    }


def _one_line(result: Any, names: str) -> str:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and names in lines[0], result.stderr
    return str(lines[0])


async def test_keys_rotate_without_the_old_key_is_one_line_and_changes_nothing(
    tmp_path: Path, database_url: str
) -> None:
    """The operator dropped the old key before rotating: every credential it wrote is named
    in a count, nothing is half re-encrypted, and putting the key back makes it work."""
    old_key, new_key = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    with_old = make_settings(
        tmp_path, database_url=database_url, encryption_keys=SecretStr(old_key)
    )
    await _store(with_old, user="11", secret="access-token-one", refresh="refresh-token-one")
    with_new = make_settings(
        tmp_path, database_url=database_url, encryption_keys=SecretStr(new_key)
    )
    await _store(with_new, user="12", secret="access-token-two", refresh=None)
    before = await _ciphertexts(database_url)

    result = run_cli(["keys", "rotate"], env=_production(database_url, new_key), cwd=tmp_path)
    line = _one_line(result, "ENCRYPTION_KEYS cannot decrypt 2 of the 3 stored secret(s)")
    assert "back into ENCRYPTION_KEYS" in line
    assert old_key not in line and new_key not in line
    assert await _ciphertexts(database_url) == before

    both = _production(database_url, f"{new_key},{old_key}")
    result = run_cli(["keys", "rotate"], env=both, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert await _read(with_new, "11") == ("access-token-one", "refresh-token-one")


async def test_keys_rotate_on_a_database_never_migrated_is_one_line(
    tmp_path: Path, empty_database_url: str
) -> None:
    key = Fernet.generate_key().decode()
    if empty_database_url.startswith("sqlite"):
        (tmp_path / "store.db").touch()  # an empty file, as an interrupted set-up leaves one
    result = run_cli(["keys", "rotate"], env=_production(empty_database_url, key), cwd=tmp_path)
    _one_line(result, "monday-notify db upgrade")


def test_keys_rotate_never_makes_a_sqlite_file(tmp_path: Path) -> None:
    """A mistyped path is refused; no empty database is left where it points."""
    key = Fernet.generate_key().decode()
    url = f"sqlite+aiosqlite:///{tmp_path / 'typo.db'}"
    result = run_cli(["keys", "rotate"], env=_production(url, key), cwd=tmp_path)
    line = _one_line(result, "does not exist")
    assert str(tmp_path / "typo.db") in line
    assert not (tmp_path / "typo.db").exists()
