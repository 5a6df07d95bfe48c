"""Contract §10: development mode never runs with production settings.

`--dev` mints admin tokens for anyone who asks (`POST /dev/api/token`) and signs them with the
configured client secret: with a production secret, that would be a production admin token.
So `--dev` (or APP_ENV=development) refuses to start, in ONE line on stderr with a non-zero exit
and no traceback, when APP_ENV=production is set explicitly, when any production secret or the
app's client id is set, or when DATABASE_URL is a PostgreSQL server that is not on this machine.
`DEV_MODE` is not a setting: it is refused too (docs/security.md).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from server.settings import SettingsError, load_settings

REPO = Path(__file__).resolve().parents[2]
SECRET = "prod-secret-value-0123456789abcdef"
FERNET = Fernet.generate_key().decode()
CLEARED = (
    "APP_ENV",
    "DEV_MODE",
    "DATABASE_URL",
    "MONDAY_CLIENT_ID",
    "MONDAY_CLIENT_SECRET",
    "MONDAY_SIGNING_SECRET",
    "ENCRYPTION_KEYS",
)
PRODUCTION = {
    "MONDAY_CLIENT_ID": "1234567",
    "MONDAY_CLIENT_SECRET": SECRET,
    "MONDAY_SIGNING_SECRET": SECRET + "-signing",
    "ENCRYPTION_KEYS": FERNET,
}


def run_cli(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in CLEARED}
    clean.update(env, PYTHONPATH=str(REPO))
    return subprocess.run(
        [sys.executable, "-m", "server", *args],
        cwd=tmp_path,
        env=clean,
        capture_output=True,
        text=True,
        timeout=30,  # on the old code `serve --dev` started and never returned
    )


def assert_refused_in_one_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode != 0, result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout.strip() == ""  # nothing served, no token printed
    for value in (SECRET, FERNET):
        assert value not in result.stderr
    return lines[0]


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"APP_ENV": "production"}, "APP_ENV"),
        ({"MONDAY_CLIENT_SECRET": SECRET}, "MONDAY_CLIENT_SECRET"),
        ({"MONDAY_SIGNING_SECRET": SECRET}, "MONDAY_SIGNING_SECRET"),
        ({"ENCRYPTION_KEYS": FERNET}, "ENCRYPTION_KEYS"),
        ({"MONDAY_CLIENT_ID": "1234567"}, "MONDAY_CLIENT_ID"),
        (PRODUCTION, "MONDAY_CLIENT_SECRET"),
    ],
)
def test_serve_dev_refuses_production_settings(
    tmp_path: Path, env: dict[str, str], named: str
) -> None:
    line = assert_refused_in_one_line(run_cli(tmp_path, "serve", "--dev", "--port", "0", **env))
    assert named in line
    assert not (tmp_path / "var" / "dev-secrets.json").exists()


def test_app_env_development_with_a_production_secret_is_refused(tmp_path: Path) -> None:
    result = run_cli(
        tmp_path, "serve", "--port", "0", APP_ENV="development", MONDAY_CLIENT_SECRET=SECRET
    )
    assert "MONDAY_CLIENT_SECRET" in assert_refused_in_one_line(result)


def test_mint_token_dev_never_signs_with_a_production_secret(tmp_path: Path) -> None:
    result = run_cli(tmp_path, "mint-token", "--dev", "--admin", MONDAY_CLIENT_SECRET=SECRET)
    assert "MONDAY_CLIENT_SECRET" in assert_refused_in_one_line(result)


@pytest.mark.parametrize("value", ["1", "true", "0"])
def test_dev_mode_env_var_is_refused(tmp_path: Path, value: str) -> None:
    """The undocumented DEV_MODE=1 turned production config into development mode."""
    result = run_cli(tmp_path, "serve", "--port", "0", DEV_MODE=value, **PRODUCTION)
    assert "DEV_MODE" in assert_refused_in_one_line(result)


def test_dev_mode_in_a_dotenv_file_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    for key in CLEARED:
        monkeypatch.delenv(key, raising=False)
    (tmp_path / ".env").write_text(
        f"DEV_MODE=1\nMONDAY_CLIENT_ID=1\nMONDAY_CLIENT_SECRET={SECRET}\nENCRYPTION_KEYS={FERNET}\n"
    )
    with pytest.raises(SettingsError) as refused:
        load_settings(var_dir=tmp_path / "var")
    assert len(refused.value.problems) == 1 and "DEV_MODE" in refused.value.problems[0]


@pytest.mark.parametrize(
    ("url", "refused"),
    [
        ("postgresql+asyncpg://app:pw@db.example.com:5432/notify", True),
        ("postgresql+asyncpg://app:pw@10.0.0.5/notify", True),
        ("postgresql+asyncpg://app:pw@localhost:5432/notify", False),
        ("postgresql+asyncpg://app:pw@127.0.0.1/notify", False),
        ("postgresql+asyncpg://app:pw@[::1]/notify", False),
        ("sqlite+aiosqlite:///elsewhere.db", False),
        # asyncpg connects to the `host` query parameter (SQLAlchemy passes it on over the
        # URL's host): one host, a comma-separated list, repeated, with ports, or a socket.
        ("postgresql+asyncpg://app:pw@/notify?host=db.internal", True),
        ("postgresql+asyncpg://app:pw@localhost/notify?host=db.internal", True),
        ("postgresql+asyncpg://app:pw@/notify?host=localhost,db.internal", True),
        ("postgresql+asyncpg://app:pw@/notify?host=127.0.0.1:5432&host=db.internal:5432", True),
        ("postgresql+asyncpg://app:pw@/notify?host=db.internal:5432", True),
        ("postgresql+asyncpg://app:pw@/notify?host=/var/run/postgresql", False),
        ("postgresql+asyncpg://app:pw@/notify?host=localhost:5432,127.0.0.1:5433", False),
        ("postgresql+asyncpg://app:pw@/notify?host=[::1]:5432", False),
    ],
)
def test_dev_mode_and_a_remote_postgresql(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, url: str, refused: bool
) -> None:
    monkeypatch.chdir(tmp_path)
    for key in (*CLEARED, "PGHOST"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("DATABASE_URL", url)
    if refused:
        with pytest.raises(SettingsError) as error:
            load_settings(dev=True, var_dir=tmp_path / "var")
        [line] = error.value.problems
        assert "DATABASE_URL" in line and "pw" not in line
    else:
        assert load_settings(dev=True, var_dir=tmp_path / "var").is_dev


@pytest.mark.parametrize(
    ("pghost", "url_host", "refused"),
    [
        ("db.internal", "", True),
        ("localhost,db.internal", "", True),
        ("/var/run/postgresql", "", False),
        ("127.0.0.1", "", False),
        ("db.internal", "localhost", False),  # a host in the URL: asyncpg never reads PGHOST
    ],
)
def test_dev_mode_and_pghost_when_the_url_has_no_host(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pghost: str, url_host: str, refused: bool
) -> None:
    """asyncpg connects to PGHOST when the URL names no host."""
    monkeypatch.chdir(tmp_path)
    for key in CLEARED:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("PGHOST", pghost)
    monkeypatch.setenv("DATABASE_URL", f"postgresql+asyncpg://app:pw@{url_host}/notify")
    if refused:
        with pytest.raises(SettingsError) as error:
            load_settings(dev=True, var_dir=tmp_path / "var")
        [line] = error.value.problems
        assert "PGHOST" in line and "db.internal" not in line
    else:
        assert load_settings(dev=True, var_dir=tmp_path / "var").is_dev


def test_explicit_development_needs_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    for key in CLEARED:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("APP_ENV", "development")
    settings = load_settings(dev=True, var_dir=tmp_path / "var")
    assert settings.is_dev and settings.client_secrets
    # Without --dev and with nothing set, production is the default and wants its secrets.
    monkeypatch.delenv("APP_ENV")
    with pytest.raises(SettingsError):
        load_settings(var_dir=tmp_path / "var")
