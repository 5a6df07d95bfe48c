"""Changes travel between instances through PostgreSQL LISTEN/NOTIFY; a slow consumer is cut
off without holding up anyone."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from aiohttp import WSCloseCode

from server.storage.migrate import upgrade
from tests.conftest import INSTALLER, FakeMondayServer, start_app
from tests.notifications.helpers import MEMBER
from tests.pg import fresh_pg_database
from tests.realtime.conftest import SHORT, ready, realtime_app
from tests.realtime.test_protocol import open_wire, send


async def test_subscribe_on_one_instance_send_through_another(
    tmp_path: Path, fake_monday: FakeMondayServer, pg_url: str, mint: Any
) -> None:
    async with fresh_pg_database(pg_url) as url:
        await upgrade(url)
        (tmp_path / "a").mkdir()
        (tmp_path / "b").mkdir()
        async for one in start_app(realtime_app(tmp_path / "a", fake_monday, url)):
            async for two in start_app(realtime_app(tmp_path / "b", fake_monday, url)):
                await ready(one, fake_monday)
                wire = await open_wire(one)
                await wire.auth(mint(user=MEMBER))
                await wire.subscribe("s")
                row_id = await send(two, mint(user=INSTALLER, admin=True), message="via two")
                created = await wire.event("s", "create")
                assert created["data"][0]["id"] == row_id
                assert created["data"][0]["message"] == "via two"
                # Delivery progress written by instance two arrives as updates on one.
                await wire.until(
                    lambda m: (
                        m.get("event") == "update" and m["data"][0]["delivery_status"] == "sent"
                    )
                )
                r = await two.delete(
                    f"/notifications/{row_id}",
                    headers={"Authorization": mint(user=INSTALLER, admin=True)},
                )
                assert r.status == 204
                assert (await wire.event("s", "delete"))["data"] == [row_id]
                await wire.ws.close()


async def test_a_connection_too_far_behind_is_closed_and_sends_go_on(
    tmp_path: Path, fake_monday: FakeMondayServer, database_url: str, mint: Any
) -> None:
    # While its token is expired a connection holds its changes (the grace period): with a
    # queue of 3 and a long grace, a few sends fill it deterministically.
    limits = replace(SHORT, max_pending_changes=3, expiry_grace=60.0)
    app = realtime_app(tmp_path, fake_monday, database_url, limits)
    async for client in start_app(app):
        await ready(client, fake_monday)
        wire = await open_wire(client)
        await wire.auth(mint(user=MEMBER, lifetime=1))
        await wire.subscribe("s", event="create")
        await wire.until(lambda m: m.get("error", {}).get("code") == "TOKEN_EXPIRED")
        admin = mint(user=INSTALLER, admin=True)
        for _ in range(4):
            await send(client, admin)  # every send answers: nobody waits for the socket
        code = await wire.closed()
        assert code == WSCloseCode.TRY_AGAIN_LATER
        assert wire.seen[-1]["error"]["code"] == "LIMIT_EXCEEDED"
        assert "too far behind" in wire.seen[-1]["error"]["message"]
