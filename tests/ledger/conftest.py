"""Ledger fixtures: the whole server over a real database (SQLite file and PostgreSQL), with a
known set of rows inserted straight into the `notifications` table."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy import insert, select

from server.app import create_app
from server.appkeys import ENGINE
from server.storage.tables import notifications
from tests.conftest import ACCOUNT, make_settings, start_app
from tests.notifications import helpers

OTHER_ACCOUNT = "2002"
ADMIN = "11"  # the installer, an admin in these tests
ALICE = "12"
BOB = "13"
CAROL = "14"

Client = TestClient[web.Request, web.Application]


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def row(**values: Any) -> dict[str, Any]:
    """A ledger row with sensible defaults; `values` override."""
    base: dict[str, Any] = {
        "timestamp": at("2024-01-01T00:00:00"),
        "status": "inbox",
        "recipient": ALICE,
        "sender": ADMIN,
        "subject": None,
        "message": "hello",
        "collection": "Project",
        "item": "500",
        "account_id": ACCOUNT,
        "sent_as": "app",
        "transport": "server",
        "credential_owner": ADMIN,
        "delivery_status": "sent",
        "attempts": 1,
        "next_attempt_at": None,
        "sent_at": None,
        "idempotency_key": None,
        "lease_owner": "worker-1",
        "monday_id": "m-1",
    }
    base.update(values)
    return base


# The shared data set: names are how the tests refer to rows.
SEED: dict[str, dict[str, Any]] = {
    "welcome": row(
        timestamp=at("2024-01-01T10:00:00"),
        recipient=ALICE,
        sender=ADMIN,
        subject="Welcome",
        message="Hello Ada, welcome aboard",
        item="500",
        attempts=1,
        sent_at=at("2024-01-01T10:00:01"),
        idempotency_key="key-1",
    ),
    "failed": row(
        timestamp=at("2024-02-01T09:30:00"),
        status="archived",
        recipient=BOB,
        sender=ADMIN,
        subject="Build failed",
        message="Pipeline #7 failed",
        collection="Post",
        item="501",
        delivery_status="failed",
        attempts=3,
        last_error={"code": "InvalidUserIdException", "message": "no such user"},
    ),
    "ping": row(
        timestamp=at("2024-03-01T12:00:00"),
        recipient=BOB,
        sender=ALICE,
        subject=None,
        message="ping 100%_done",
        item="502",
        sent_as="installer",
        attempts=0,
        delivery_status="queued",
        next_attempt_at=at("2024-03-01T12:05:00"),
        # Held by another instance's lease: this app's delivery worker must leave it alone,
        # or it would deliver (and so change) the fixture while the tests read it.
        lease_owner="another-instance",
        lease_expires_at=at("2999-01-01T00:00:00"),
    ),
    "reply": row(
        timestamp=at("2024-03-02T08:00:00"),
        recipient=ALICE,
        sender=BOB,
        subject="Re: ping",
        message="PONG",
        item="502",
        attempts=2,
        sent_at=at("2024-03-02T08:00:05"),
    ),
    "carol": row(
        timestamp=at("2024-03-03T08:00:00"),
        recipient=CAROL,
        sender=BOB,
        subject="Private",
        message="for carol only",
        item="503",
    ),
    "foreign": row(
        timestamp=at("2024-03-04T08:00:00"),
        account_id=OTHER_ACCOUNT,
        recipient=ALICE,
        sender=ALICE,
        subject="Welcome",
        message="Hello from another account",
        item="500",
    ),
}


async def insert_rows(client: Client, *rows: dict[str, Any]) -> list[int]:
    """Insert `rows` into the database the running app uses; their ids, in order."""
    ids: list[int] = []
    async with client.app[ENGINE].begin() as conn:
        for values in rows:
            result = await conn.execute(insert(notifications).values(**values))
            ids.append(int(result.inserted_primary_key[0]))
    return ids


async def fetch_row(client: Client, row_id: int) -> dict[str, Any] | None:
    return await helpers.fetch_row(client.app[ENGINE], row_id)


async def all_ids(client: Client) -> set[int]:
    async with client.app[ENGINE].connect() as conn:
        return {int(i) for i in (await conn.execute(select(notifications.c.id))).scalars()}


@pytest.fixture
async def client(tmp_path: Path, database_url: str) -> AsyncIterator[Client]:
    """The whole server on 127.0.0.1, over SQLite and (when available) PostgreSQL."""
    async for c in start_app(create_app(make_settings(tmp_path, database_url=database_url))):
        yield c


@pytest.fixture
async def sqlite_client(tmp_path: Path) -> AsyncIterator[Client]:
    """SQLite only: for refusals that are decided before the database is reached."""
    async for c in start_app(create_app(make_settings(tmp_path))):
        yield c


@pytest.fixture
async def ids(client: Client) -> dict[str, int]:
    """The SEED rows, inserted; name -> id."""
    inserted = await insert_rows(client, *SEED.values())
    return dict(zip(SEED, inserted, strict=True))


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
