"""Contract §2: settings validated at start-up, dev mode needs nothing, the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jwt
import pytest

from server.settings import SettingsError, load_settings

REPO = Path(__file__).resolve().parents[1]
ENV_KEYS = (
    "MONDAY_CLIENT_ID",
    "MONDAY_CLIENT_SECRET",
    "ENCRYPTION_KEYS",
    "APP_ENV",
    "MONDAY_SIGNING_SECRET",
)


def clean_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ENV_KEYS}
    env.update(extra)
    env["PYTHONPATH"] = str(REPO)
    return env


def run_cli(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "server", *args],
        cwd=tmp_path,
        env=clean_env(tmp_path, **env),
        capture_output=True,
        text=True,
        timeout=60,
    )


def serve_dev_ran(tmp_path: Path) -> None:
    """What `serve --dev` leaves in var/: mint-token uses those secrets, never makes its own."""
    load_settings(dev=True, var_dir=tmp_path / "var")


def test_production_lists_every_missing_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    for key in ENV_KEYS:
        monkeypatch.delenv(key, raising=False)
    with pytest.raises(SettingsError) as error:
        load_settings()
    text = "\n".join(error.value.problems)
    assert (
        "MONDAY_CLIENT_ID" in text and "MONDAY_CLIENT_SECRET" in text and "ENCRYPTION_KEYS" in text
    )
    assert len(error.value.problems) == 3


def test_serve_refuses_to_start_without_secrets(tmp_path: Path) -> None:
    result = run_cli(tmp_path, "serve", "--port", "0")
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.startswith("monday-notify:")]
    assert len(lines) == 3


def test_a_bad_encryption_key_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MONDAY_CLIENT_ID", "x")
    monkeypatch.setenv("MONDAY_CLIENT_SECRET", "y")
    monkeypatch.setenv("ENCRYPTION_KEYS", "not-a-fernet-key")
    with pytest.raises(SettingsError) as error:
        load_settings()
    assert error.value.problems == ["ENCRYPTION_KEYS holds a value that is not a Fernet key."]


def test_dev_mode_needs_nothing_and_keeps_its_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    for key in ENV_KEYS:
        monkeypatch.delenv(key, raising=False)
    first = load_settings(dev=True, var_dir=tmp_path / "var")
    second = load_settings(dev=True, var_dir=tmp_path / "var")
    assert first.client_secrets == second.client_secrets and first.client_secrets
    assert first.fernet_keys == second.fernet_keys
    assert first.monday_api_url.endswith("/dev/monday/v2")
    stored = json.loads((tmp_path / "var" / "dev-secrets.json").read_text())
    assert stored["client_secret"] == first.client_secrets[0]
    assert oct((tmp_path / "var" / "dev-secrets.json").stat().st_mode & 0o777) == "0o600"


def test_mint_token_prints_a_verifiable_session_token(tmp_path: Path) -> None:
    serve_dev_ran(tmp_path)
    result = run_cli(
        tmp_path,
        "mint-token",
        "--dev",
        "--account",
        "77",
        "--user",
        "5",
        "--admin",
        "--lifetime",
        "60",
    )
    assert result.returncode == 0, result.stderr
    secret = json.loads((tmp_path / "var" / "dev-secrets.json").read_text())["client_secret"]
    claims = jwt.decode(result.stdout.strip(), secret, algorithms=["HS256"])
    assert claims["dat"]["account_id"] == 77 and claims["dat"]["user_id"] == 5
    assert claims["dat"]["is_admin"] is True


@pytest.mark.parametrize(
    ("flag", "claim"), [("--view-only", "is_view_only"), ("--guest", "is_guest")]
)
def test_mint_token_role_flags(tmp_path: Path, flag: str, claim: str) -> None:
    serve_dev_ran(tmp_path)
    result = run_cli(tmp_path, "mint-token", "--dev", flag)
    claims = jwt.decode(result.stdout.strip(), options={"verify_signature": False})
    assert claims["dat"][claim] is True


def test_mint_integration_and_lifecycle(tmp_path: Path) -> None:
    serve_dev_ran(tmp_path)
    result = run_cli(
        tmp_path, "mint-token", "--dev", "--kind", "integration", "--short-lived-token", "slt"
    )
    claims = jwt.decode(result.stdout.strip(), options={"verify_signature": False})
    assert claims["aud"].endswith("/monday/actions/notify") and claims["shortLivedToken"] == "slt"
    result = run_cli(tmp_path, "mint-token", "--dev", "--kind", "lifecycle")
    claims = jwt.decode(result.stdout.strip(), options={"verify_signature": False})
    # monday's outbound shape (contract §10): top-level ids, `aud` = the lifecycle URL, no `dat`.
    assert claims["accountId"] == 1001 and "dat" not in claims
    assert claims["aud"].endswith("/monday/lifecycle") and claims["exp"] > claims["iat"]


def test_keys_generate_prints_a_fernet_key(tmp_path: Path) -> None:
    from cryptography.fernet import Fernet

    result = run_cli(tmp_path, "keys", "generate")
    Fernet(result.stdout.strip().encode())


def test_db_upgrade_creates_the_schema(tmp_path: Path) -> None:
    import sqlite3

    result = run_cli(tmp_path, "db", "upgrade", "--dev")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("applied 0001: ") and len(lines) > 2, lines
    assert lines[-1].startswith("database is now at the latest revision (")
    again = run_cli(tmp_path, "db", "upgrade", "--dev").stdout.splitlines()
    assert again == [lines[-1].replace("is now", "was already")]
    tables = {
        r[0]
        for r in sqlite3.connect(tmp_path / "var" / "monday-notify.db").execute(
            "select name from sqlite_master"
        )
    }
    assert {"notifications", "installations", "credentials", "alembic_version"} <= tables


def test_serve_dev_starts_on_the_embedded_defaults(tmp_path: Path) -> None:
    """What `make run` does: no configuration, the local monday at /dev, the API answering."""
    import socket
    import time
    import urllib.request

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, "-m", "server", "serve", "--dev", "--port", str(port)],
        cwd=tmp_path,
        env=clean_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as answer:
                    assert json.loads(answer.read()) == {"status": "ready"}
                    break
            except OSError:
                assert process.poll() is None, process.stdout.read() if process.stdout else ""
                assert time.monotonic() < deadline, "the dev server did not start in 30 s"
                time.sleep(0.2)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/dev", timeout=5) as page:
            assert page.status == 200
            assert "text/html" in page.headers["Content-Type"]
        assert (tmp_path / "var" / "dev-secrets.json").exists()
        assert (tmp_path / "var" / "monday-notify.db").exists()
    finally:
        process.terminate()
        process.wait(timeout=20)


@pytest.mark.parametrize(("value", "ok"), [("0", True), ("60", True), ("61", False), ("-1", False)])
def test_jwt_leeway_is_bounded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str, ok: bool
) -> None:
    """Contract §2: JWT_LEEWAY_SECONDS is 0 to 60; anything else refuses to start."""
    from pydantic import ValidationError

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("JWT_LEEWAY_SECONDS", value)
    if ok:
        assert load_settings(dev=True, var_dir=tmp_path / "var").jwt_leeway_seconds == int(value)
    else:
        with pytest.raises(ValidationError):
            load_settings(dev=True, var_dir=tmp_path / "var")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("PUBLIC_BASE_URL", "garbage"),
        ("PUBLIC_BASE_URL", "ftp://example.com"),
        ("PUBLIC_BASE_URL", "https://example.com:99999"),
        ("PUBLIC_BASE_URL", "https://example.com:abc"),
        ("PUBLIC_BASE_URL", "https://exa mple.com"),
        ("PUBLIC_BASE_URL", "https://example.com/?q=1#f"),
        ("MONDAY_API_URL", "garbage"),
        ("MONDAY_OAUTH_TOKEN_URL", "https://"),
        ("FRAME_ANCESTORS", "https://*.monday.com; script-src * 'unsafe-inline'"),
        ("FRAME_ANCESTORS", "https://a.example, https://b.example"),
        ("FRAME_ANCESTORS", " "),
        ("MONDAY_APP_ID", "0"),
        ("MONDAY_APP_ID", "-5"),
        ("MONDAY_TIMEOUT_SECONDS", "inf"),
        ("DELIVERY_POLL_SECONDS", "inf"),
        ("REQUEST_BODY_TIMEOUT_SECONDS", "1e9"),
    ],
)
def test_settings_that_would_start_wrong_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    """Each of these used to start a server that could not work as configured (a CSP with an
    injected directive, a manifest with a garbage URL, a timeout that never fires)."""
    from pydantic import ValidationError

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError) as refused:
        load_settings(dev=True, var_dir=tmp_path / "var")
    assert name.lower() in str(refused.value)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("PUBLIC_BASE_URL", "https://notify.example.com/"),
        ("FRAME_ANCESTORS", "'self' https://*.monday.com"),
        ("MONDAY_APP_ID", "10000"),
        ("MONDAY_TIMEOUT_SECONDS", "2.5"),
    ],
)
def test_good_values_are_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(name, value)
    settings = load_settings(dev=True, var_dir=tmp_path / "var")
    assert str(getattr(settings, name.lower())) == value


def test_development_state_is_in_a_folder_only_its_owner_reads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """var/ holds the dev secrets and the SQLite file (installers' e-mails, every message)."""
    monkeypatch.chdir(tmp_path)
    load_settings(dev=True, var_dir=tmp_path / "var")
    assert (tmp_path / "var").stat().st_mode & 0o777 == 0o700
