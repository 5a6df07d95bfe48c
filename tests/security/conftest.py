"""The whole server over SQLite and PostgreSQL, talking to the fake monday on 127.0.0.1."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from server.app import create_app
from tests.conftest import FakeMondayServer, make_settings, start_app


@pytest.fixture
async def both_client(
    tmp_path: Path, database_url: str, fake_monday: FakeMondayServer
) -> AsyncIterator[Any]:
    settings = make_settings(
        tmp_path,
        database_url=database_url,
        monday_api_url=fake_monday.api_url,
        monday_oauth_token_url=fake_monday.token_url,
        monday_oauth_authorize_url=fake_monday.authorize_url,
    )
    async for client in start_app(create_app(settings)):
        yield client
