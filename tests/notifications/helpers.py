"""Setting up a monday account for send tests: installation, credentials, fake tokens."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from aiohttp.test_utils import TestClient
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from server.appkeys import ENGINE
from server.clock import utcnow
from server.installations.crypto import CredentialCipher
from server.storage.installations import SqlCredentials, upsert_installation
from server.storage.notifications import SqlNotificationRows
from server.storage.tables import notifications
from tests.conftest import ACCOUNT, ENCRYPTION_KEY, INSTALLER

MEMBER = "12"
OTHER_ACCOUNT = "2002"


async def fetch_row(engine: AsyncEngine, row_id: int) -> dict[str, Any] | None:
    """A ledger row as the store returns it, as a dict (every column, typed values)."""
    row = await SqlNotificationRows(engine).get(row_id)
    return asdict(row) if row is not None else None


async def install(
    client: TestClient[Any, Any], *, policy: str = "app_then_installer", installed: bool = True
) -> None:
    """What monday's `install` lifecycle event leaves behind."""
    async with client.app[ENGINE].begin() as conn:
        await upsert_installation(
            conn,
            ACCOUNT,
            {
                "installer_user_id": INSTALLER,
                "sender_policy": policy,
                "installed": installed,
                "last_event_type": "install" if installed else "uninstall",
            },
            now=utcnow(),
        )


async def connect(
    client: TestClient[Any, Any], fake: Any, *, user: str, kind: str, token: str | None = None
) -> str:
    """A credential connected for `user`, known to the fake monday too; returns the token."""
    token = token or f"{kind}-token-of-{user}"
    fake.add_user(user, ACCOUNT, f"User {user}", f"user{user}@example.com")
    fake.add_token(token, user, ACCOUNT, "personal" if kind == "api_key" else "oauth")
    await SqlCredentials(client.app[ENGINE], CredentialCipher([ENCRYPTION_KEY])).put(
        account_id=ACCOUNT,
        user_id=user,
        kind=kind,  # type: ignore[arg-type]
        secret=token,
    )
    return token


async def row_count(client: TestClient[Any, Any]) -> int:
    """Ledger rows written so far."""
    async with client.app[ENGINE].connect() as conn:
        query = select(func.count()).select_from(notifications)
        return int((await conn.execute(query)).scalar_one())


def notification(**overrides: Any) -> dict[str, Any]:
    body = {
        "recipient": MEMBER,
        "message": "Build finished",
        "collection": "Project",
        "item": "5550001",
    }
    body.update(overrides)
    return body


def sent_texts(received: list[Any]) -> list[str]:
    """The notification texts of create_notification requests the fake received: `text` in a
    one-notification document, `text_0`.. in an aliased one (several sends coalesced, or one
    send of several rows)."""
    texts: list[str] = []
    for request in received:
        variables = request.body.get("variables") or {}
        texts.extend(
            value for name, value in variables.items() if name == "text" or name.startswith("text_")
        )
    return texts
