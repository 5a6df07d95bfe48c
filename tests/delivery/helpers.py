"""Delivery test helpers: a server on the fake monday with chosen settings, row polling, a free
port and an installed account for servers that run outside a TestClient."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy.ext.asyncio import AsyncEngine

from server.app import create_app
from server.appkeys import ENGINE
from server.clock import utcnow
from server.installations.crypto import CredentialCipher
from server.installations.model import CredentialKind
from server.storage.installations import SqlCredentials, upsert_installation
from tests.conftest import ACCOUNT, ENCRYPTION_KEY, INSTALLER, FakeMondayServer, make_settings
from tests.notifications.helpers import MEMBER, connect, fetch_row, install, notification

Client = TestClient[web.Request, web.Application]


def free_port() -> int:
    """A 127.0.0.1 port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def install_account(
    engine: AsyncEngine, credentials: Iterable[tuple[str, CredentialKind, str]]
) -> None:
    """ACCOUNT installed by INSTALLER (policy app_then_installer), and each (user, kind, secret)
    credential stored: what `install` and `connect` leave behind, without a TestClient."""
    async with engine.begin() as connection:
        await upsert_installation(
            connection,
            ACCOUNT,
            {
                "installer_user_id": INSTALLER,
                "sender_policy": "app_then_installer",
                "installed": True,
                "last_event_type": "install",
            },
            now=utcnow(),
        )
    cipher = CredentialCipher([ENCRYPTION_KEY])
    for user, kind, secret in credentials:
        await SqlCredentials(engine, cipher).put(
            account_id=ACCOUNT, user_id=user, kind=kind, secret=secret
        )


@asynccontextmanager
async def server_on(
    tmp_path: Path, fake: FakeMondayServer | None, **overrides: Any
) -> AsyncIterator[Client]:
    """The whole server on 127.0.0.1 and a SQLite file, its monday API being `fake`."""
    if fake is not None:
        overrides.setdefault("monday_api_url", fake.api_url)
    settings = make_settings(tmp_path, **overrides)
    async with TestClient(TestServer(create_app(settings), host="127.0.0.1")) as client:
        if fake is not None:
            await install(client)
            await connect(client, fake.fake, user=MEMBER, kind="oauth")
        yield client


async def post(client: Client, mint: Any, text: str, **overrides: Any) -> dict[str, Any]:
    response = await client.post(
        "/notifications",
        json=notification(message=text, **overrides),
        headers={"Authorization": mint(user=MEMBER)},
    )
    assert response.status == 200, await response.text()
    data: dict[str, Any] = (await response.json())["data"]
    return data


async def row(client: Client, row_id: int) -> dict[str, Any]:
    found = await fetch_row(client.app[ENGINE], row_id)
    assert found is not None
    return found


async def wait_for(
    client: Client, row_id: int, *statuses: str, within: float = 15.0
) -> dict[str, Any]:
    """The row once its status is one of `statuses` (fails after `within` seconds)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        found = await row(client, row_id)
        if found["delivery_status"] in statuses:
            return found
        assert loop.time() < deadline, f"row {row_id} stayed {found['delivery_status']}"
        await asyncio.sleep(0.05)
