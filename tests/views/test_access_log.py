"""One access-log line per request, with the status the client got and never the query."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from aiohttp.test_utils import TestClient


async def test_every_request_is_logged_once_without_its_query(
    client: TestClient[Any, Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="monday_notify.access")
    token = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl"
    page = await client.get(f"/views/board?sessionToken={token}")
    missing = await client.get("/no-such-route")
    records = [r for r in caplog.records if r.name == "monday_notify.access"]
    assert [(r.fields["method"], r.fields["path"], r.fields["status"]) for r in records] == [
        ("GET", "/views/board", page.status),
        ("GET", "/no-such-route", missing.status),
    ]
    assert missing.status == 404
    assert page.status == 401  # the bad token's refresh page: a 4xx leaves a trace
    assert records[0].fields["request_id"] == page.headers["X-Request-Id"]
    assert all(
        token not in r.getMessage() and "sessionToken" not in r.getMessage() for r in records
    )
    assert records[0].getMessage().startswith("GET /views/board 401 ")
