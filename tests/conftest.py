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
from server.token_mint import mint_session

# pg_url, empty_database_url, database_url: one database per test on SQLite and PostgreSQL.
pytest_plugins = ("tests.pg",)

CLIENT_ID = "test-client-id"
CLIENT_SECRET = "test-client-secret-newest-0123456789abcdef"
OLD_CLIENT_SECRET = "test-client-secret-older-0123456789abcdef"
SIGNING_SECRET = "test-signing-secret-0123456789abcdef0123"
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


async def start_app(
    app: web.Application,
) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        yield client


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    """The whole server on 127.0.0.1 over a real SQLite file."""
    async for c in start_app(create_app(settings)):
        yield c


# -- the fake monday (server/dev/fake_monday.py) over real HTTP on 127.0.0.1 ------------------
from server.dev.fake_monday import (  # noqa: E402
    FakeMonday,
    create_fake_monday_app,
    seed_dev_users,
)


class FakeMondayServer:
    """A running fake monday: `.fake` is its state, `.url` its base URL (`.url + "/v2"`)."""

    def __init__(self, fake: FakeMonday, server: TestServer) -> None:
        self.fake = fake
        self.server = server
        self.url = str(server.make_url("")).rstrip("/")

    @property
    def api_url(self) -> str:
        return self.url + "/v2"

    @property
    def token_url(self) -> str:
        return self.url + "/oauth2/token"

    @property
    def authorize_url(self) -> str:
        return self.url + "/oauth2/authorize"


@pytest.fixture
async def fake_monday() -> AsyncIterator[FakeMondayServer]:
    """The fake monday, seeded with the dev users of account 1001 (user 11 = INSTALLER)
    and their personal keys `dev-personal-key-user-<id>`; accepts the test app's OAuth client."""
    fake = FakeMonday()
    seed_dev_users(fake, ACCOUNT)
    fake.register_client(CLIENT_ID, CLIENT_SECRET)
    fake.register_client(CLIENT_ID, OLD_CLIENT_SECRET)
    server = TestServer(create_fake_monday_app(fake), host="127.0.0.1")
    await server.start_server()
    try:
        yield FakeMondayServer(fake, server)
    finally:
        await server.close()


def fake_monday_settings(
    tmp_path: Path, fake_monday: FakeMondayServer, **overrides: Any
) -> Settings:
    """Test settings whose monday API and OAuth endpoints are the fake monday."""
    return make_settings(
        tmp_path,
        monday_api_url=fake_monday.api_url,
        monday_oauth_token_url=fake_monday.token_url,
        monday_oauth_authorize_url=fake_monday.authorize_url,
        **overrides,
    )


@pytest.fixture
def monday_settings(tmp_path: Path, fake_monday: FakeMondayServer) -> Settings:
    """Test settings whose monday API and OAuth endpoints are the fake monday."""
    return fake_monday_settings(tmp_path, fake_monday)


@pytest.fixture
async def monday_client(
    monday_settings: Settings,
) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    """The whole server on 127.0.0.1, talking to the `fake_monday` fixture."""
    async for c in start_app(create_app(monday_settings)):
        yield c
