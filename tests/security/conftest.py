"""The red-team battery's fixtures: the whole server over SQLite and PostgreSQL, the fake
monday over real HTTP, and the tokens an attacker (or monday) can present."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import select

from server.app import create_app
from server.appkeys import ENGINE
from server.storage.tables import credentials, installations, lifecycle_events, notifications
from tests.conftest import FakeMondayServer, fake_monday_settings, make_settings, start_app

BASE = "http://127.0.0.1:8080"  # tests.conftest.make_settings' PUBLIC_BASE_URL
LIFECYCLE_AUD = BASE + "/monday/lifecycle"
ACTIONS_PATH = "/monday/actions/notify"
ACTIONS_AUD = BASE + ACTIONS_PATH
OTHER_ACCOUNT = "2002"  # account B; tests.conftest.ACCOUNT (1001) is account A
MEMBER = "12"
GUEST_OF_B = "77"
NEW_ADMIN = "15"


def sign(claims: dict[str, Any], secret: str) -> str:
    return jwt.encode(claims, secret, algorithm="HS256")


def days_ago(days: float) -> int:
    return int(time.time() - days * 86400)


@pytest.fixture
async def app(
    tmp_path: Path, database_url: str, fake_monday: FakeMondayServer
) -> AsyncIterator[TestClient[Any, Any]]:
    """The whole server on 127.0.0.1 over SQLite and PostgreSQL, talking to the fake monday."""
    settings = fake_monday_settings(tmp_path, fake_monday, database_url=database_url)
    async for client in start_app(create_app(settings)):
        yield client


async def table(client: TestClient[Any, Any], name: str) -> list[dict[str, Any]]:
    """Every row of one of the tables these tests look at, read straight from the store."""
    chosen = {
        "installations": installations,
        "credentials": credentials,
        "lifecycle_events": lifecycle_events,
        "notifications": notifications,
    }[name]
    async with client.app[ENGINE].connect() as conn:
        result = await conn.execute(select(chosen).order_by(*chosen.primary_key.columns))
        return [dict(row) for row in result.mappings()]


@pytest.fixture
async def sqlite_app(
    tmp_path: Path, fake_monday: FakeMondayServer
) -> AsyncIterator[TestClient[Any, Any]]:
    """SQLite only: for refusals decided before the store is reached."""
    settings = make_settings(tmp_path, monday_api_url=fake_monday.api_url)
    async for client in start_app(create_app(settings)):
        yield client


@pytest.fixture
def both_client(app: TestClient[Any, Any]) -> TestClient[Any, Any]:
    """The cost-limit tests' name for `app` (SQLite and PostgreSQL)."""
    return app
