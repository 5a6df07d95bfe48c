"""Fixtures of the send tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from server.app import create_app
from tests.conftest import fake_monday_settings, start_app


@pytest.fixture
async def engine_client(
    tmp_path: Path, empty_database_url: str, fake_monday: Any
) -> AsyncIterator[TestClient[Any, Any]]:
    """The whole server on SQLite or PostgreSQL (migrated at start), talking to the fake."""
    settings = fake_monday_settings(tmp_path, fake_monday, database_url=empty_database_url)
    async for client in start_app(create_app(settings)):
        yield client
