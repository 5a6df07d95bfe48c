"""The whole server and the fake monday on real 127.0.0.1 ports, in a background thread.

For clients that are synchronous (schemathesis uses `requests`): the servers run on their own
event loop in a thread, over a real SQLite file, with account 1001 installed and its
installer's app OAuth token and personal API key connected.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from aiohttp import web
from aiohttp.test_utils import TestServer
from sqlalchemy import insert

from server.app import create_app
from server.appkeys import ENGINE
from server.clock import utcnow
from server.dev.fake_monday import FakeMonday, create_fake_monday_app, seed_dev_users
from server.storage.tables import notifications
from tests.conftest import ACCOUNT, CLIENT_ID, CLIENT_SECRET, INSTALLER
from tests.conftest import make_settings as make_test_settings
from tests.delivery.helpers import install_account

T = TypeVar("T")
APP_TOKEN = "app-oauth-token-of-installer"
API_KEY = "dev-personal-key-user-11"
SHORT_LIVED = "short-lived-token-of-installer"


class LiveServer:
    """`url` is the server's base URL; `fake` the fake monday's state (read it via `run`)."""

    def __init__(
        self, url: str, app: web.Application, fake: FakeMonday, loop: asyncio.AbstractEventLoop
    ) -> None:
        self.url = url
        self.app = app
        self.fake = fake
        self.loop = loop

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run `coro` on the servers' loop (the fake monday is not thread-safe)."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=30)


async def _prepare(app: web.Application, fake: FakeMonday) -> None:
    fake.add_token(APP_TOKEN, INSTALLER, ACCOUNT, "oauth")
    fake.add_token(SHORT_LIVED, INSTALLER, ACCOUNT, "short_lived")
    await install_account(
        app[ENGINE], [(INSTALLER, "oauth", APP_TOKEN), (INSTALLER, "api_key", API_KEY)]
    )


async def insert_awaiting_row(app: web.Application) -> int:
    """A ledger row the installer sent through seamless auth, still awaiting its relay."""
    values = {
        "timestamp": utcnow(),
        "status": "inbox",
        "recipient": "12",
        "sender": INSTALLER,
        "message": "awaiting the view",
        "collection": "Project",
        "item": "1",
        "account_id": ACCOUNT,
        "sent_as": "app",
        "transport": "seamless",
        "delivery_status": "awaiting_client",
        "attempts": 0,
    }
    async with app[ENGINE].begin() as conn:
        result = await conn.execute(insert(notifications).values(**values))
    return int(result.inserted_primary_key[0])


@contextmanager
def live_server(tmp_path: Path) -> Iterator[LiveServer]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    def run(coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, loop).result(timeout=60)

    async def start() -> tuple[TestServer, web.AppRunner, str, web.Application, FakeMonday]:
        fake = FakeMonday()
        seed_dev_users(fake, ACCOUNT)
        fake.register_client(CLIENT_ID, CLIENT_SECRET)
        monday = TestServer(create_fake_monday_app(fake), host="127.0.0.1")
        await monday.start_server()
        monday_url = str(monday.make_url("")).rstrip("/")
        settings = make_test_settings(
            tmp_path,
            monday_api_url=monday_url + "/v2",
            monday_oauth_token_url=monday_url + "/oauth2/token",
            monday_oauth_authorize_url=monday_url + "/oauth2/authorize",
        )
        app = create_app(settings)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        await _prepare(app, fake)
        return monday, runner, f"http://127.0.0.1:{port}", app, fake

    monday, runner, url, app, fake = run(start())
    try:
        yield LiveServer(url, app, fake, loop)
    finally:

        async def stop() -> None:
            await runner.cleanup()
            await monday.close()

        run(stop())
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()
