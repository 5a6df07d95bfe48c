"""`POST /notifications/{id}/relay` keeps only the documented error fields, each a bounded
string (docs/security.md); anything else is 400 INVALID_PAYLOAD and changes nothing."""

from __future__ import annotations

from typing import Any

import pytest

from server.appkeys import ENGINE
from tests.notifications.helpers import MEMBER, fetch_row, install, notification


async def awaiting_row(client: Any, mint: Any) -> int:
    await install(client, policy="app")
    response = await client.post(
        "/notifications",
        json=notification(),
        headers={"Authorization": mint(user=MEMBER), "X-Relay-Capable": "1"},
    )
    row = (await response.json())["data"]
    assert row["delivery_status"] == "awaiting_client"
    row_id: int = row["id"]
    return row_id


async def relay(client: Any, mint: Any, row_id: int, body: Any) -> Any:
    return await client.post(
        f"/notifications/{row_id}/relay", json=body, headers={"Authorization": mint(user=MEMBER)}
    )


async def test_only_documented_fields_are_stored(monday_client: Any, mint: Any) -> None:
    row_id = await awaiting_row(monday_client, mint)
    error = {
        "code": "USER_ACCESS_DENIED",
        "message": "m" * 5000,
        "monday_request_id": "req-1",
        "stack": ["x" * 10_000],
        "nested": {"deep": {"deeper": "y" * 10_000}},
    }
    answer = await relay(monday_client, mint, row_id, {"ok": False, "error": error})
    assert answer.status == 200, await answer.text()
    stored = await fetch_row(monday_client.app[ENGINE], row_id)
    assert stored is not None and stored["delivery_status"] == "failed"
    last = stored["last_error"]
    assert set(last) == {"code", "message", "monday_request_id"}
    assert last["code"] == "USER_ACCESS_DENIED" and last["monday_request_id"] == "req-1"
    assert 0 < len(last["message"]) <= 1000  # monday's text is cut, not refused


@pytest.mark.parametrize(
    "body",
    [
        {"ok": False, "error": "a string"},
        {"ok": False, "error": ["code", "x"]},
        {"ok": False, "error": {"code": {"nested": "object"}}},
        {"ok": False, "error": {"code": 42}},
        {"ok": False, "error": {"message": ["list"]}},
        {"ok": False, "error": {"monday_request_id": {"a": 1}}},
        {"ok": False, "error": {"code": "C" * 65}},
        {"ok": False, "error": {"monday_request_id": "r" * 129}},
        {"ok": False, "error": {"code": "NUL\u0000"}},
        {"ok": False, "error": {"message": "lone \ud800 surrogate"}},
        {"ok": True, "monday_id": "9" * 65},
        {"ok": True, "monday_id": {"id": 1}},
    ],
)
async def test_invalid_error_types_are_refused(
    monday_client: Any, mint: Any, body: dict[str, Any]
) -> None:
    row_id = await awaiting_row(monday_client, mint)
    answer = await relay(monday_client, mint, row_id, body)
    assert answer.status == 400, await answer.text()
    assert (await answer.json())["errors"][0]["extensions"]["code"] == "INVALID_PAYLOAD"
    stored = await fetch_row(monday_client.app[ENGINE], row_id)
    assert stored is not None and stored["delivery_status"] == "awaiting_client"
    assert stored["last_error"] is None


async def test_null_fields_get_defaults(monday_client: Any, mint: Any) -> None:
    row_id = await awaiting_row(monday_client, mint)
    answer = await relay(monday_client, mint, row_id, {"ok": False, "error": {"code": None}})
    assert answer.status == 200
    last = (await answer.json())["data"]["last_error"]
    assert last["code"] == "SEAMLESS_ERROR" and last["message"]
    assert last["monday_request_id"] is None
