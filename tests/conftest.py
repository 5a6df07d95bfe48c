"""Shared fixtures: real SQLite files, real servers on 127.0.0.1, minted tokens."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr

from server.app import create_app
from server.settings import Settings
from server.tokens import mint_session

# pg_url, empty_database_url, database_url: one database per test on SQLite and PostgreSQL.
pytest_plugins = ("tests.pg",)

CLIENT_ID = "test-client-id"
CLIENT_SECRET = "test-client-secret-newest"
OLD_CLIENT_SECRET = "test-client-secret-older"
SIGNING_SECRET = "test-signing-secret"
ENCRYPTION_KEY = "5Vb2n3xG3X2kq1ZKq7c2n8Yb0mQ4wD6rT9uH1jL3pS0="
ACCOUNT = "1001"
INSTALLER = "11"


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "app_env": "production",
        "database_url": f"sqlite+aiosqlite:///{tmp_path / 'test.db'}",
        "monday_client_id": CLIENT_ID,
        "monday_client_secret": SecretStr(f"{CLIENT_SECRET},{OLD_CLIENT_SECRET}"),
        "monday_signing_secret": SecretStr(SIGNING_SECRET),
        "encryption_keys": SecretStr(ENCRYPTION_KEY),
        "public_base_url": "http://127.0.0.1:8080",
        "log_format": "text",
        "delivery_poll_seconds": 0.05,
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path)


Mint = Callable[..., str]


@pytest.fixture
def mint() -> Mint:
    """`mint(user="12", admin=True, ...)`: a session token for the test app."""

    def _mint(
        *,
        account: str = ACCOUNT,
        user: str = INSTALLER,
        admin: bool = False,
        view_only: bool = False,
        guest: bool = False,
        lifetime: int = 300,
        secret: str = CLIENT_SECRET,
        **kwargs: Any,
    ) -> str:
        return mint_session(
            secret,
            account_id=account,
            user_id=user,
            client_id=CLIENT_ID,
            is_admin=admin,
            is_view_only=view_only,
            is_guest=guest,
            lifetime=lifetime,
            **kwargs,
        )

    return _mint


async def start_app(app: web.Application) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        yield client


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    """The whole server on 127.0.0.1 over a real SQLite file."""
    async for c in start_app(create_app(settings)):
        yield c
