"""A whole server with short realtime timings, over the fake monday, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from server.app import create_app
from server.realtime.limits import RealtimeLimits
from server.realtime.runtime import REALTIME_LIMITS
from tests.conftest import INSTALLER, FakeMondayServer, make_settings, start_app
from tests.notifications.helpers import connect, install

SHORT = RealtimeLimits(auth_timeout=0.3, expiry_grace=0.4, max_pending_changes=64)


def realtime_app(
    tmp_path: Path, fake: FakeMondayServer, database_url: str, limits: RealtimeLimits = SHORT
) -> web.Application:
    settings = make_settings(
        tmp_path,
        database_url=database_url,
        monday_api_url=fake.api_url,
        monday_oauth_token_url=fake.token_url,
        jwt_leeway_seconds=0,
    )
    app = create_app(settings)
    app[REALTIME_LIMITS] = limits
    return app


async def ready(client: TestClient[Any, Any], fake: FakeMondayServer) -> None:
    """Installed, the installer connected: sends go out as the app."""
    await install(client)
    await connect(client, fake.fake, user=INSTALLER, kind="oauth")


@pytest.fixture
async def rt(
    tmp_path: Path, fake_monday: FakeMondayServer, database_url: str
) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    async for client in start_app(realtime_app(tmp_path, fake_monday, database_url)):
        await ready(client, fake_monday)
        yield client
