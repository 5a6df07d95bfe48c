"""The official @directus/sdk `realtime()` client receives init/create/update/delete (§13)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp.test_utils import TestClient

from tests.conftest import INSTALLER
from tests.ledger_compat.test_directus_sdk import ROOT, require_node
from tests.notifications.helpers import MEMBER
from tests.realtime.test_protocol import send

SCRIPT = ROOT / "tests" / "js" / "directus_realtime.mjs"


async def next_line(stream: asyncio.StreamReader) -> dict[str, Any]:
    line = await asyncio.wait_for(stream.readline(), 30)
    assert line, "the SDK script ended early"
    message: dict[str, Any] = json.loads(line)
    return message


async def test_sdk_realtime_receives_init_create_update_delete(
    rt: TestClient[Any, Any], mint: Any
) -> None:
    require_node()
    admin = mint(user=INSTALLER, admin=True)
    before = await send(rt, admin, message="before")
    base_url = str(rt.make_url("")).rstrip("/")
    process = await asyncio.create_subprocess_exec(
        "node",
        "--experimental-websocket",
        "--no-warnings",
        str(SCRIPT),
        base_url,
        mint(user=MEMBER),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    try:
        init = await next_line(process.stdout)
        assert init["type"] == "subscription" and init["event"] == "init"
        assert [row["id"] for row in init["data"]] == [before]
        assert await next_line(process.stdout) == {"ready": True}

        row_id = await send(rt, admin, message="live from the SDK test")
        seen = [await next_line(process.stdout)]
        assert seen[0]["event"] == "create"
        assert seen[0]["data"][0] == {
            "id": row_id,
            "message": "live from the SDK test",
            "delivery_status": seen[0]["data"][0]["delivery_status"],
            "status": "inbox",
        }
        while not (
            seen[-1]["event"] == "update" and seen[-1]["data"][0]["delivery_status"] == "sent"
        ):
            seen.append(await next_line(process.stdout))
        r = await rt.patch(
            f"/notifications/{row_id}",
            json={"status": "archived"},
            headers={"Authorization": admin},
        )
        assert r.status == 200
        archived = await next_line(process.stdout)
        while archived["data"][0]["status"] != "archived":  # later delivery updates may come
            assert archived["event"] == "update"
            archived = await next_line(process.stdout)
        assert archived["event"] == "update"
        r = await rt.delete(f"/notifications/{row_id}", headers={"Authorization": admin})
        assert r.status == 204
        deleted = await next_line(process.stdout)
        # Events carry the row as read when the change is announced, so the announcement of an
        # earlier change (sending, then sent) may arrive after the archive, showing it archived.
        while deleted["event"] == "update":
            assert deleted["data"][0]["status"] == "archived"
            deleted = await next_line(process.stdout)
        assert deleted["event"] == "delete" and deleted["data"] == [row_id]
        assert await asyncio.wait_for(process.wait(), 30) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
