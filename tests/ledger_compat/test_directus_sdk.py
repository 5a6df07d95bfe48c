"""The real Directus JavaScript SDK (@directus/sdk 26 from package.json) against our ledger.

A `node` process runs tests/js/directus_sdk.mjs against the whole server on 127.0.0.1, which
sends through the fake monday; the test checks what the SDK's notification helpers returned,
what went over the wire, and what monday received.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import INSTALLER
from tests.notifications.helpers import MEMBER, connect, install

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "tests" / "js" / "directus_sdk.mjs"
SDK = ROOT / "node_modules" / "@directus" / "sdk" / "package.json"


def require_node() -> None:
    """Skip locally without node or `npm ci`; under CI=true, fail instead."""
    missing = [
        what
        for what, ok in (
            ("node", shutil.which("node") is not None),
            ("@directus/sdk", SDK.exists()),
        )
        if not ok
    ]
    if not missing:
        return
    reason = f"needs {' and '.join(missing)} (run `make test`, which runs `npm ci`)"
    if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
        pytest.fail(reason)
    pytest.skip(reason)


async def run_sdk(client: Any, token: str, recipient: str) -> dict[str, Any]:
    require_node()
    base_url = str(client.make_url("")).rstrip("/")
    process = await asyncio.create_subprocess_exec(
        "node",
        str(SCRIPT),
        base_url,
        token,
        recipient,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=90)
    assert process.returncode == 0, err.decode()
    result: dict[str, Any] = json.loads(out)
    return result


async def test_directus_sdk_notification_helpers(
    monday_client: Any, fake_monday: Any, mint: Any
) -> None:
    await install(monday_client)
    await connect(monday_client, fake_monday.fake, user=INSTALLER, kind="oauth")
    token = mint(user=INSTALLER, admin=True)

    r = await run_sdk(monday_client, token, MEMBER)
    ids = r["ids"]

    # staticToken() sends Bearer, which the server accepts.
    assert r["authorizations"] == [f"Bearer {token}"]
    # createNotification / createNotifications: the ledger rows, sent as the app.
    assert r["created"]["recipient"] == MEMBER
    assert r["created"]["subject"] == "From the Directus SDK"
    assert r["created"]["message"] == "Deploy finished"
    assert r["created"]["status"] == "inbox"
    assert r["created"]["sent_as"] == "app"
    assert r["created"]["delivery_status"] in {"sent", "sending", "queued"}
    assert [n["message"] for n in r["createdMany"]] == ["Second from the SDK", "Third from the SDK"]
    assert len(set(ids)) == 3

    # readNotifications with filter, sort, limit, fields, meta.
    assert r["list"] == [
        {"id": ids[2], "message": "Third from the SDK", "status": "inbox", "recipient": MEMBER},
        {"id": ids[1], "message": "Second from the SDK", "status": "inbox", "recipient": MEMBER},
    ]
    exchange = r["listExchange"]
    assert exchange["query"]["meta"] == "filter_count"
    assert json.loads(exchange["query"]["filter"])["_and"][0] == {"recipient": {"_eq": MEMBER}}
    assert exchange["body"]["meta"] == {"filter_count": 3}
    assert r["searchList"] == [{"id": i} for i in ids]

    # readNotification by id.
    assert r["one"] == {"id": ids[0], "message": "Deploy finished", "status": "inbox"}

    # updateNotification, updateNotifications(keys), updateNotificationsBatch.
    assert r["updated"]["id"] == ids[0]
    assert r["updated"]["status"] == "archived"
    assert r["updated"]["message"] == "Deploy finished"
    assert r["updatedMany"] == [
        {"id": ids[1], "status": "archived"},
        {"id": ids[2], "status": "archived"},
    ]
    assert r["updatedBatch"] == [{"id": ids[2], "status": "inbox"}]

    # aggregate (count, and count grouped by status).
    assert r["archivedCount"] == [{"count": 2}]
    assert sorted(r["countByStatus"], key=lambda row: row["status"]) == [
        {"status": "archived", "count": 2},
        {"status": "inbox", "count": 1},
    ]

    # Only status is writable: the SDK surfaces a Directus error.
    refused = r["editRefused"]
    assert (refused["isDirectusError"], refused["status"], refused["code"]) == (
        True,
        403,
        "FORBIDDEN",
    )
    assert "only status can change" in refused["message"]

    # deleteNotification / deleteNotifications: 204, the SDK returns null.
    assert r["deleted"] is None
    assert r["deleteExchange"]["status"] == 204
    assert r["deletedMany"] is None
    assert r["afterDelete"] == []
    assert r["readDeleted"] == {"isDirectusError": True, "status": 403, "code": "FORBIDDEN"}

    # monday received the three notifications (the ledger rows are gone, monday's bell is not).
    await wait_for_delivery(fake_monday.fake, 3)
    delivered = sorted(fake_monday.fake.notifications, key=lambda n: n.target_id)
    assert [(n.recipient_user_id, n.target_id, n.target_type, n.text) for n in delivered] == [
        (MEMBER, "5550001", "Project", "Deploy finished"),
        (MEMBER, "5550002", "Project", "Second from the SDK"),
        (MEMBER, "5550003", "Post", "Third from the SDK"),
    ]
    assert all(n.from_app and n.token_owner_user_id == INSTALLER for n in delivered)


async def wait_for_delivery(fake: Any, count: int) -> None:
    for _ in range(100):
        if len(fake.notifications) >= count:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"monday received {len(fake.notifications)} of {count} notifications")
