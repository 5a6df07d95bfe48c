"""The local monday at /dev: only in development mode; tokens, seamless calls, bells, failures."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from server.app import create_app
from server.dev.fake_monday import FAKE_MONDAY
from server.tokens import verify_session
from tests.conftest import CLIENT_ID, CLIENT_SECRET, make_settings, start_app

MUTATION = (
    "mutation ($user_id: ID!, $target_id: ID!, $text: String!, "
    "$target_type: NotificationTargetType!) { create_notification(user_id: $user_id, "
    "target_id: $target_id, text: $text, target_type: $target_type) { id } }"
)


@pytest.fixture
async def dev_client(tmp_path: Path) -> AsyncIterator[TestClient[Any, Any]]:
    settings = make_settings(tmp_path, app_env="development")
    async for client in start_app(create_app(settings)):
        yield client


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/dev"),
        ("GET", "/dev/api/state"),
        ("POST", "/dev/api/token"),
        ("POST", "/dev/api/seamless"),
        ("GET", "/dev/api/bell"),
        ("POST", "/dev/api/fail"),
    ],
)
async def test_no_harness_in_production(
    client: TestClient[Any, Any], method: str, path: str
) -> None:
    response = await client.request(method, path, json={"user": "11", "role": "admin"})
    assert response.status in (404, 405)
    assert "eyJ" not in await response.text()  # no JWT minted


async def test_harness_page_in_dev_mode(dev_client: TestClient[Any, Any]) -> None:
    response = await dev_client.get("/dev")
    assert response.status == 200
    body = await response.text()
    assert '<iframe id="frame"' in body
    assert "/static/js/harness.js" in body
    assert "<script>" not in body  # no inline script
    csp = response.headers["Content-Security-Policy"]
    assert "frame-src 'self'" in csp
    assert "script-src 'self'" in csp


@pytest.mark.parametrize(
    ("role", "flags"),
    [
        ("admin", (True, False, False)),
        ("member", (False, False, False)),
        ("guest", (False, False, True)),
        ("view_only", (False, True, False)),
    ],
)
async def test_harness_mints_session_tokens_for_dev_users(
    dev_client: TestClient[Any, Any], role: str, flags: tuple[bool, bool, bool]
) -> None:
    response = await dev_client.post("/dev/api/token", json={"user": "12", "role": role})
    assert response.status == 200
    token = (await response.json())["data"]["token"]
    session = verify_session(token, secrets=[CLIENT_SECRET], client_id=CLIENT_ID, app_id=None)
    assert (session.account_id, session.user_id) == ("1001", "12")
    assert (session.is_admin, session.is_view_only, session.is_guest) == flags


async def test_harness_can_hand_out_an_expired_token(dev_client: TestClient[Any, Any]) -> None:
    response = await dev_client.post("/dev/api/token", json={"user": "11", "expired": True})
    token = (await response.json())["data"]["token"]
    api = await dev_client.get("/installation", headers={"Authorization": token})
    assert api.status == 401
    assert (await api.json())["errors"][0]["extensions"]["code"] == "TOKEN_EXPIRED"


async def test_harness_mints_tokens_with_a_chosen_lifetime(
    dev_client: TestClient[Any, Any],
) -> None:
    """Short-lived tokens let the views' socket re-authentication be watched in /dev."""
    response = await dev_client.post("/dev/api/token", json={"user": "11", "lifetime": 30})
    assert response.status == 200
    data = (await response.json())["data"]
    assert data["expires_in"] == 30
    session = verify_session(
        data["token"], secrets=[CLIENT_SECRET], client_id=CLIENT_ID, app_id=None
    )
    assert 20 <= session.expires_at - time.time() <= 31
    for bad in (5, 4000, "60", 1.5, True):
        refused = await dev_client.post("/dev/api/token", json={"user": "11", "lifetime": bad})
        assert refused.status == 400, bad
        body = await refused.json()
        assert body["errors"][0]["extensions"]["code"] == "INVALID_PAYLOAD"


async def test_harness_refuses_unknown_users_and_roles(dev_client: TestClient[Any, Any]) -> None:
    assert (await dev_client.post("/dev/api/token", json={"user": "999"})).status == 400
    bad_role = await dev_client.post("/dev/api/token", json={"user": "11", "role": "owner"})
    assert bad_role.status == 400


async def test_seamless_api_call_reaches_the_fake_monday_as_the_app(
    dev_client: TestClient[Any, Any],
) -> None:
    variables = {"user_id": "12", "target_id": "5001", "text": "hello", "target_type": "Project"}
    response = await dev_client.post(
        "/dev/api/seamless", json={"user": "11", "query": MUTATION, "variables": variables}
    )
    assert response.status == 200
    answer = (await response.json())["data"]
    assert answer["status"] == 200
    assert answer["body"]["data"]["create_notification"]["id"]
    fake = dev_client.app[FAKE_MONDAY]
    delivered = fake.bell("12")
    assert [(n.text, n.from_app, n.token_kind) for n in delivered] == [("hello", True, "seamless")]
    bell = await (await dev_client.get("/dev/api/bell")).json()
    max_bell = next(b for b in bell["data"] if b["user"]["id"] == "12")
    assert max_bell["notifications"][0]["from_app"] is True
    assert max_bell["notifications"][0]["shown_from"] == "the app"


async def test_the_board_query_is_answered_from_the_dev_board(
    dev_client: TestClient[Any, Any],
) -> None:
    query = "query ($ids: [ID!]) { boards(ids: $ids) { id name subscribers { id name } } }"
    response = await dev_client.post(
        "/dev/api/seamless", json={"user": "11", "query": query, "variables": {"ids": ["5001"]}}
    )
    board = (await response.json())["data"]["body"]["data"]["boards"][0]
    assert board["id"] == "5001"
    assert {p["name"] for p in board["subscribers"]} >= {"Ada Admin", "Max Member"}


async def test_injected_failure_reaches_the_next_monday_call(
    dev_client: TestClient[Any, Any],
) -> None:
    assert (await dev_client.post("/dev/api/fail", json={"kind": "nonsense"})).status == 400
    ok = await dev_client.post("/dev/api/fail", json={"kind": "server_error", "count": 1})
    assert ok.status == 200
    variables = {"user_id": "12", "target_id": "5001", "text": "x", "target_type": "Project"}
    response = await dev_client.post(
        "/dev/api/seamless", json={"user": "11", "query": MUTATION, "variables": variables}
    )
    answer = (await response.json())["data"]
    assert answer["status"] >= 500 or answer["body"].get("errors")
    assert dev_client.app[FAKE_MONDAY].bell("12") == []


async def test_the_users_query_is_answered_with_dev_names(
    dev_client: TestClient[Any, Any],
) -> None:
    query = "query ($ids: [ID!]) { users(ids: $ids) { id name } }"
    response = await dev_client.post(
        "/dev/api/seamless", json={"user": "12", "query": query, "variables": {"ids": ["11"]}}
    )
    users = (await response.json())["data"]["body"]["data"]["users"]
    assert users == [{"id": "11", "name": "Ada Admin"}]
