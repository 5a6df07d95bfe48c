"""No credential is ever stored (or logged) in clear text (contract §4, §8)."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from server.appkeys import ENGINE, SERVICES
from server.dev.fake_monday_state import dev_personal_key
from server.installations.crypto import CIPHER
from server.settings import Settings
from server.storage.installations import SqlCredentials
from tests.conftest import ACCOUNT, INSTALLER
from tests.installations.helpers import db_path, event, post_event
from tests.installations.test_oauth import callback, consent, start


def every_text_value(path: str) -> list[str]:
    """Every text or blob value of every table of the SQLite file, read with sqlite3."""
    values: list[str] = []
    with sqlite3.connect(path) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        assert {"credentials", "oauth_states", "installations"} <= set(tables)
        for table in tables:
            for row in conn.execute(f'SELECT * FROM "{table}"'):
                for value in row:
                    if isinstance(value, bytes):
                        values.append(value.decode("latin-1"))
                    elif isinstance(value, str):
                        values.append(value)
    return values


def raw_bytes(path: str) -> bytes:
    """The database file and its write-ahead log, byte for byte."""
    return b"".join(Path(p).read_bytes() for p in (path, path + "-wal") if Path(p).exists())


async def test_no_secret_is_in_the_database_or_the_logs_in_clear_text(
    monday_client: Any,
    monday_settings: Settings,
    fake_monday: Any,
    mint: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    fake_monday.fake.issue_refresh_tokens = True
    fake_monday.fake.access_token_lifetime_seconds = 60
    await post_event(monday_client, event("install"))

    api_key = dev_personal_key(INSTALLER)
    admin = mint(admin=True)
    response = await monday_client.put(
        "/installation/api-key", json={"api_key": api_key}, headers={"Authorization": admin}
    )
    assert response.status == 200
    states = []
    for user in (INSTALLER, "12"):
        url = await start(monday_client, mint(user=user, admin=user == INSTALLER))
        states.append(url.split("state=")[1])
        assert (await callback(monday_client, await consent(url, as_user=user)))[0] == 200

    app = monday_client.app
    first = await SqlCredentials(app[ENGINE], app[CIPHER]).get(ACCOUNT, "12", "oauth")
    assert first is not None and first.refresh_secret is not None
    refreshed = await app[SERVICES].installations.credentials.refresher.fresh(first)
    assert refreshed.secret != first.secret

    secrets = [api_key, *states]
    for token in fake_monday.fake.tokens.values():
        if token.kind == "oauth":
            secrets.append(token.token)
    secrets += [first.secret, first.refresh_secret, refreshed.secret]
    assert refreshed.refresh_secret is not None
    secrets.append(refreshed.refresh_secret)
    assert len(set(secrets)) >= 7

    # Our own loggers (the test server's access log is aiohttp's, off in `serve`).
    ours = "\n".join(
        f"{r.getMessage()} {getattr(r, 'fields', '')}"
        for r in caplog.records
        if r.name.startswith("server")
    )
    assert "oauth connected" in ours
    path = db_path(monday_settings)
    values = every_text_value(path)
    assert any(v.startswith("gAAAAA") for v in values)  # the encrypted forms are there
    raw = raw_bytes(path)
    for secret in secrets:
        assert not any(secret in v for v in values), "a secret is stored in clear text"
        assert secret.encode() not in raw
        assert secret not in ours
