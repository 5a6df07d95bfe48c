"""The fake monday behaves like monday where our code depends on it (real HTTP, 127.0.0.1)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from server.app import create_app
from server.dev.fake_monday import FAKE_MONDAY, FakeMonday, create_fake_monday_app
from server.dev.fake_monday_http import rate_headers
from tests.conftest import ACCOUNT, CLIENT_ID, CLIENT_SECRET, INSTALLER, make_settings
from tests.conftest import FakeMondayServer as Server

KEY = f"dev-personal-key-user-{INSTALLER}"
MUTATION = (
    "mutation ($u: ID!, $t: ID!, $x: String!, $k: NotificationTargetType!) "
    "{ create_notification(user_id: $u, target_id: $t, text: $x, target_type: $k) { id text } }"
)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def gql(
    http: aiohttp.ClientSession, server: Server, body: Any, token: str | None = KEY
) -> tuple[int, Any, Any]:
    headers = {"API-Version": "2026-07"}
    if token is not None:
        headers["Authorization"] = token
    async with http.post(server.api_url, json=body, headers=headers) as response:
        return response.status, await response.json(content_type=None), response.headers


async def test_missing_or_unknown_token_is_401(
    http: aiohttp.ClientSession, fake_monday: Server
) -> None:
    for token in (None, "nope", f"Bearer {KEY}"):
        status, body, _ = await gql(http, fake_monday, {"query": "{ me { id } }"}, token)
        assert status == 401
        assert body["errors"][0]["extensions"]["code"] == "UNAUTHORIZED"
        assert "data" not in body


async def test_me_answer_shape_and_rate_limit_headers(
    http: aiohttp.ClientSession, fake_monday: Server
) -> None:
    status, body, headers = await gql(
        http, fake_monday, {"query": "{ me { id name email account { id name slug } } }"}
    )
    assert status == 200
    assert body["data"]["me"]["id"] == INSTALLER
    assert body["data"]["me"]["name"] == "Ada Admin"
    assert body["data"]["me"]["account"]["id"] == ACCOUNT
    assert body["account_id"] == int(ACCOUNT)
    assert body["extensions"]["request_id"] == fake_monday.fake.requests[0].request_id
    assert '"minuteRate";q=5000;w=60' in headers["RateLimit-Policy"]
    assert '"minuteRate";r=4999' in headers["RateLimit"]


def test_a_fractional_window_is_advertised_rounded_up() -> None:
    """A test's 2.5 s window reads as 3 s, never 2 (a client would take a shorter window
    and spend the next one's budget early)."""
    fake = FakeMonday(clock=lambda: 100.0)
    fake.minute_window_seconds = 2.5
    headers = rate_headers(fake, ACCOUNT)
    assert '"minuteRate";q=5000;w=3,' in headers["RateLimit-Policy"]
    assert '"minuteRate";r=5000;t=3,' in headers["RateLimit"]


async def test_validates_like_graphql(http: aiohttp.ClientSession, fake_monday: Server) -> None:
    status, body, _ = await gql(http, fake_monday, {"query": "{ me { id nme } }"})
    assert status == 200 and "data" not in body
    assert body["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    status, body, _ = await gql(http, fake_monday, {"query": "{ me { id "})
    assert body["errors"][0]["extensions"]["code"] == "GRAPHQL_PARSE_FAILED"
    wrong_enum = {
        "query": MUTATION,
        "variables": {"u": "12", "t": "1", "x": "hi", "k": "Item"},
    }
    status, body, _ = await gql(http, fake_monday, wrong_enum)
    assert "NotificationTargetType" in body["errors"][0]["message"]
    status, body, _ = await gql(http, fake_monday, {"query": MUTATION, "variables": '{"u": 1}'})
    assert status == 400  # variables must be an object since 2025-04
    assert fake_monday.fake.notifications == []


async def test_literals_aliases_and_per_alias_errors(
    http: aiohttp.ClientSession, fake_monday: Server
) -> None:
    query = (
        'mutation { a: create_notification(user_id: 12, target_id: 5, text: "one", '
        "target_type: Project) { id } b: create_notification(user_id: 424242, target_id: 5, "
        'text: "two", target_type: Post) { id } '
        "complexity { before after query reset_in_x_seconds } }"
    )
    status, body, _ = await gql(http, fake_monday, {"query": query})
    assert status == 200
    assert body["data"]["a"]["id"] == fake_monday.fake.notifications[0].monday_id
    assert body["data"]["b"] is None
    [err] = body["errors"]
    assert err["path"] == ["b"] and err["locations"]
    assert err["extensions"]["code"] == "InvalidUserIdException"
    assert body["data"]["complexity"]["query"] > 0
    assert [n.text for n in fake_monday.fake.notifications] == ["one"]


async def test_user_of_another_account_is_invalid(
    http: aiohttp.ClientSession, fake_monday: Server
) -> None:
    fake_monday.fake.add_user("900", "2002", "Other", "o@example.com")
    body = {"query": MUTATION, "variables": {"u": "900", "t": "1", "x": "hi", "k": "Project"}}
    _, answer, _ = await gql(http, fake_monday, body)
    assert answer["errors"][0]["extensions"]["code"] == "InvalidUserIdException"


async def test_minute_budget_answers_429_until_the_window_resets(
    http: aiohttp.ClientSession,
) -> None:
    now = [1000.0]
    fake = FakeMonday(clock=lambda: now[0])
    fake.add_user("1", "1", "A", "a@example.com")
    fake.add_token("k", "1", "1", "personal")
    fake.minute_budget = 2
    server = TestServer(create_fake_monday_app(fake), host="127.0.0.1")
    await server.start_server()
    try:
        wrapped = Server(fake, server)
        statuses = [
            (await gql(http, wrapped, {"query": "{ me { id } }"}, "k"))[0] for _ in range(3)
        ]
        assert statuses == [200, 200, 429]
        _, body, headers = await gql(http, wrapped, {"query": "{ me { id } }"}, "k")
        assert body["errors"][0]["extensions"]["code"] == "RATE_LIMIT_EXCEEDED"
        assert int(headers["Retry-After"]) == body["errors"][0]["extensions"]["retry_in_seconds"]
        assert '"minuteRate";r=0' in headers["RateLimit"]
        now[0] += 61
        assert (await gql(http, wrapped, {"query": "{ me { id } }"}, "k"))[0] == 200
    finally:
        await server.close()


async def test_control_routes(http: aiohttp.ClientSession, fake_monday: Server) -> None:
    base = fake_monday.url + "/_control"
    async with http.post(f"{base}/fail", json={"kind": "rate_limit", "retry_in_seconds": 2}) as r:
        assert r.status == 200
    async with http.post(f"{base}/fail", json={"kind": "meteor"}) as r:
        assert r.status == 400
    status, body, headers = await gql(http, fake_monday, {"query": "{ me { id } }"})
    assert (status, headers["Retry-After"]) == (429, "2")
    assert body["errors"][0]["extensions"]["retry_in_seconds"] == 2
    send = {"query": MUTATION, "variables": {"u": "12", "t": "1", "x": "hi", "k": "Project"}}
    await gql(http, fake_monday, send)
    await gql(http, fake_monday, {"query": "{ me { id } }"}, "secret-looking-unknown")
    async with http.get(f"{base}/notifications", params={"user_id": "12"}) as r:
        [bell] = (await r.json())["data"]
    assert (bell["text"], bell["shown_from"], bell["from_app"]) == ("hi", "Ada Admin", False)
    async with http.get(f"{base}/requests") as r:
        requests = (await r.json())["data"]
    assert len(requests) == 3  # control calls are not recorded
    assert requests[1]["body"]["variables"]["x"] == "hi"
    assert requests[1]["headers"]["authorization"] == KEY  # a fake key is shown
    assert "secret-looking-unknown" not in str(requests)  # anything else is not
    async with http.get(f"{base}/users") as r:
        users = {u["id"]: u for u in (await r.json())["data"]}
    assert users["11"]["personal_api_keys"] == [KEY]
    async with http.post(f"{base}/reset") as r:
        assert r.status == 200
    assert fake_monday.fake.requests == [] and fake_monday.fake.notifications == []
    assert (await gql(http, fake_monday, {"query": "{ me { id } }"}))[0] == 200  # keys survive


async def test_oauth_authorize_redirects_and_token_endpoint_validates(
    http: aiohttp.ClientSession, fake_monday: Server
) -> None:
    redirect = "http://127.0.0.1:9/oauth/callback?x=1"
    params = {
        "client_id": CLIENT_ID,
        "redirect_uri": redirect,
        "state": "s-1",
        "user_id": "12",
    }
    async with http.get(fake_monday.authorize_url, params=params, allow_redirects=False) as r:
        assert r.status == 302
        location = urlsplit(r.headers["Location"])
    query = parse_qs(location.query)
    assert location.path == "/oauth/callback"
    assert (query["state"], query["x"]) == (["s-1"], ["1"])
    form = {
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "code": query["code"][0],
        "redirect_uri": "http://127.0.0.1:9/elsewhere",
    }
    async with http.post(fake_monday.token_url, data=form) as r:  # form body
        assert (r.status, (await r.json())["error"]) == (400, "invalid_grant")
    code = fake_monday.fake.issue_oauth_code("12", ACCOUNT, redirect_uri=redirect)
    async with http.post(
        fake_monday.token_url, data={**form, "code": code, "redirect_uri": redirect}
    ) as r:
        granted = await r.json()
    assert r.status == 200 and "refresh_token" not in granted
    _, body, _ = await gql(http, fake_monday, {"query": "{ me { id } }"}, granted["access_token"])
    assert body["data"]["me"]["id"] == "12"
    assert fake_monday.fake.requests[-1].token_kind == "oauth"
    denied = {**params, "deny": "1"}
    async with http.get(fake_monday.authorize_url, params=denied, allow_redirects=False) as r:
        assert parse_qs(urlsplit(r.headers["Location"]).query)["error"] == ["access_denied"]
    async with http.post(fake_monday.token_url, json={"grant_type": "refresh_token"}) as r:
        assert r.status == 401  # no client credentials


@pytest.fixture
async def dev_server(tmp_path: Path) -> AsyncIterator[TestClient[Any, Any]]:
    settings = make_settings(tmp_path, app_env="development")
    async with TestClient(TestServer(create_app(settings), host="127.0.0.1")) as client:
        yield client


async def test_dev_mode_mounts_the_fake_at_dev_monday(dev_server: TestClient[Any, Any]) -> None:
    fake = dev_server.app[FAKE_MONDAY]
    response = await dev_server.post(
        "/dev/monday/v2",
        json={"query": "{ me { id name } }"},
        headers={"Authorization": "dev-personal-key-user-12"},
    )
    assert response.status == 200
    assert (await response.json())["data"]["me"] == {"id": "12", "name": "Max Member"}
    assert fake.requests[0].path == "/dev/monday/v2"
    assert {u.name for u in fake.users.values()} >= {"Ada Admin", "Gus Guest", "Vera Viewer"}
    assert CLIENT_ID in fake.clients


async def test_production_has_no_fake(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    async with TestClient(TestServer(create_app(settings), host="127.0.0.1")) as client:
        assert FAKE_MONDAY not in client.app
        response = await client.post("/dev/monday/v2", json={"query": "{ me { id } }"})
        assert response.status == 404
