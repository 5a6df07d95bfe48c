"""MondayClient against the fake monday over real HTTP on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from server.monday.client import (
    CREATE_NOTIFICATION,
    MondayClient,
    NotificationRequest,
    notification_document,
)
from server.monday.oauth import exchange_code, refresh
from server.monday.outcome import MondayAuthError, MondayError
from tests.conftest import ACCOUNT, CLIENT_ID, CLIENT_SECRET, INSTALLER, FakeMondayServer

KEY = f"dev-personal-key-user-{INSTALLER}"
MEMBER = "12"
NASTY = 'He said "hi" \\ back\\slash\nnew line 🎉 {} } mutation { x } $user_id # not a comment'


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def monday(http: aiohttp.ClientSession, fake_monday: FakeMondayServer) -> MondayClient:
    return MondayClient(http, fake_monday.api_url, "2026-07", 5.0)


def api_calls(fake_monday: FakeMondayServer) -> list[Any]:
    return fake_monday.fake.requests_to("/v2")


async def test_create_notification_sends_what_monday_expects(
    monday: MondayClient, fake_monday: FakeMondayServer
) -> None:
    outcome = await monday.create_notification(
        KEY, user_id=MEMBER, target_id="5550001", text=NASTY, target_type="Post"
    )
    assert outcome.status == "sent"
    [call] = api_calls(fake_monday)
    assert call.method == "POST"
    assert call.authorization == KEY  # raw, no "Bearer"
    assert call.api_version == "2026-07"
    assert call.headers["content-type"] == "application/json"
    assert call.body["query"] == CREATE_NOTIFICATION
    assert call.body["variables"] == {
        "user_id": MEMBER,
        "target_id": "5550001",
        "text": NASTY,
        "target_type": "Post",
    }
    # The text travels only as a variable, byte for byte, never inside the query.
    assert NASTY not in call.body["query"]
    assert json.loads(call.raw_body.decode("utf-8"))["variables"]["text"] == NASTY
    [delivered] = fake_monday.fake.bell(MEMBER)
    assert delivered.text == NASTY
    assert delivered.target_type == "Post"
    assert (delivered.from_app, delivered.shown_from) == (False, "Ada Admin")
    assert outcome.monday_id == delivered.monday_id
    assert outcome.request_id == call.request_id


async def test_app_token_notification_is_shown_from_the_app(
    monday: MondayClient, fake_monday: FakeMondayServer
) -> None:
    token = fake_monday.fake.issue_token(INSTALLER, ACCOUNT, "oauth")
    outcome = await monday.create_notification(
        token, user_id=MEMBER, target_id="1", text="hello", target_type="Project"
    )
    assert outcome.status == "sent"
    [delivered] = fake_monday.fake.bell(MEMBER)
    assert (delivered.token_kind, delivered.from_app, delivered.shown_from) == (
        "oauth",
        True,
        "the app",
    )
    assert delivered.token_owner_user_id == INSTALLER


async def test_aliases_one_document_and_one_bad_alias(
    monday: MondayClient, fake_monday: FakeMondayServer
) -> None:
    items = [
        NotificationRequest(user_id=MEMBER, target_id="1", text="first"),
        NotificationRequest(user_id="999999", target_id="2", text="nobody"),
        NotificationRequest(user_id="13", target_id="3", text='third "quoted"', target_type="Post"),
    ]
    outcomes = await monday.create_notifications(KEY, items)
    assert [o.status for o in outcomes] == ["sent", "failed", "sent"]
    assert outcomes[1].code == "InvalidUserIdException"
    assert not outcomes[1].unauthorized
    [call] = api_calls(fake_monday)  # ONE request
    assert call.body["query"] == notification_document(3)
    assert call.body["variables"]["text_2"] == 'third "quoted"'
    assert call.body["variables"]["user_id_1"] == "999999"
    assert [n.text for n in fake_monday.fake.notifications] == ["first", 'third "quoted"']
    assert outcomes[0].monday_id != outcomes[2].monday_id
    assert await monday.create_notifications(KEY, []) == []
    assert len(api_calls(fake_monday)) == 1


async def test_forced_invalid_user_fails_only_that_alias(
    monday: MondayClient, fake_monday: FakeMondayServer
) -> None:
    fake_monday.fake.fail_next("invalid_user", user_id="13")
    outcomes = await monday.create_notifications(
        KEY,
        [
            NotificationRequest(user_id="13", target_id="1", text="a"),
            NotificationRequest(user_id=MEMBER, target_id="1", text="b"),
        ],
    )
    assert [(o.status, o.code) for o in outcomes] == [
        ("failed", "InvalidUserIdException"),
        ("sent", None),
    ]


@pytest.mark.parametrize(
    ("kind", "params", "status", "code", "retry_after"),
    [
        ("rate_limit", {"retry_in_seconds": 7}, "retry", "RATE_LIMIT_EXCEEDED", 7.0),
        (
            "rate_limit",
            {"retry_in_seconds": 4, "retry_in_body": False},
            "retry",
            "RATE_LIMIT_EXCEEDED",
            4.0,
        ),
        ("complexity", {"retry_in_seconds": 12}, "retry", "COMPLEXITY_BUDGET_EXHAUSTED", 12.0),
        ("legacy_complexity", {"retry_in_seconds": 9}, "retry", "ComplexityException", 9.0),
        ("concurrency", {"retry_in_seconds": 3}, "retry", "maxConcurrencyExceeded", 3.0),
        # Contract §10: a 5xx may come after monday executed the mutation: unknown, not failed.
        ("server_error", {}, "unknown", "INTERNAL_SERVER_ERROR", None),
        ("server_error", {"status": 200}, "unknown", "INTERNAL_SERVER_ERROR", None),
        ("server_error", {"legacy": True}, "unknown", "HTTP_500", None),
        ("bad_gateway", {}, "unknown", "HTTP_502", None),
        ("bad_gateway", {"status": 504}, "unknown", "HTTP_504", None),
    ],
)
async def test_injected_failures_are_classified(
    monday: MondayClient,
    fake_monday: FakeMondayServer,
    kind: str,
    params: dict[str, Any],
    status: str,
    code: str | None,
    retry_after: float | None,
) -> None:
    fake_monday.fake.fail_next(kind, **params)
    outcome = await monday.create_notification(
        KEY, user_id=MEMBER, target_id="1", text="x", target_type="Project"
    )
    assert outcome.status == status
    if code is not None:
        assert outcome.code == code
    assert outcome.retry_after_seconds == retry_after
    assert not outcome.unauthorized
    assert fake_monday.fake.notifications == []
    # The failure was used once: the next send goes through.
    again = await monday.create_notification(
        KEY, user_id=MEMBER, target_id="1", text="x", target_type="Project"
    )
    assert again.status == "sent"


async def test_daily_limit_waits_for_midnight_utc(
    monday: MondayClient, fake_monday: FakeMondayServer
) -> None:
    fake_monday.fake.fail_next("daily_limit")
    outcome = await monday.create_notification(
        KEY, user_id=MEMBER, target_id="1", text="x", target_type="Project"
    )
    assert (outcome.status, outcome.code, outcome.daily_limit) == (
        "retry",
        "DAILY_LIMIT_EXCEEDED",
        True,
    )
    assert outcome.retry_after_seconds is not None
    assert 0 < outcome.retry_after_seconds <= 86400


async def test_unauthorized_marks_the_credential_and_hides_the_token(
    monday: MondayClient, fake_monday: FakeMondayServer
) -> None:
    fake_monday.fake.fail_next("unauthorized")
    injected = await monday.create_notification(
        KEY, user_id=MEMBER, target_id="1", text="x", target_type="Project"
    )
    unknown_token = "not-a-token-monday-knows-1234"
    rejected = await monday.create_notification(
        unknown_token, user_id=MEMBER, target_id="1", text="x", target_type="Project"
    )
    for outcome, token in ((injected, KEY), (rejected, unknown_token)):
        assert (outcome.status, outcome.unauthorized) == ("failed", True)
        assert outcome.http_status == 401
        assert token not in repr(outcome)
    assert fake_monday.fake.notifications == []


async def test_me_with_a_good_and_a_bad_token(
    monday: MondayClient, fake_monday: FakeMondayServer
) -> None:
    user = await monday.me(KEY)
    assert (user.id, user.name, user.email, user.account_id) == (
        INSTALLER,
        "Ada Admin",
        "ada.admin@example.com",
        ACCOUNT,
    )
    [call] = api_calls(fake_monday)
    assert call.authorization == KEY
    with pytest.raises(MondayAuthError) as caught:
        await monday.me("wrong-token-abcdef")
    assert "wrong-token-abcdef" not in str(caught.value)
    fake_monday.fake.fail_next("server_error")
    with pytest.raises(MondayError) as other:
        await monday.me(KEY)
    assert not isinstance(other.value, MondayAuthError)
    assert other.value.code == "INTERNAL_SERVER_ERROR"


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_connection_refused_is_retry(http: aiohttp.ClientSession) -> None:
    monday = MondayClient(http, f"http://127.0.0.1:{_closed_port()}/v2", "2026-07", 2.0)
    outcome = await monday.create_notification(
        KEY, user_id=MEMBER, target_id="1", text="x", target_type="Project"
    )
    assert (outcome.status, outcome.code) == ("retry", "MONDAY_UNREACHABLE")
    assert outcome.retry_after_seconds is not None and outcome.retry_after_seconds > 0
    outcomes = await monday.create_notifications(
        KEY, [NotificationRequest(user_id=MEMBER, target_id="1", text="x")] * 2
    )
    assert [o.status for o in outcomes] == ["retry", "retry"]


async def test_hang_after_sending_is_unknown_and_may_still_execute(
    http: aiohttp.ClientSession, fake_monday: FakeMondayServer
) -> None:
    monday = MondayClient(http, fake_monday.api_url, "2026-07", 0.2)
    fake_monday.fake.fail_next("timeout", seconds=0.6, executes=True)
    outcome = await monday.create_notification(
        KEY, user_id=MEMBER, target_id="1", text="late", target_type="Project"
    )
    assert (outcome.status, outcome.code) == ("unknown", "NO_ANSWER")
    assert len(api_calls(fake_monday)) == 1  # it did reach monday
    assert fake_monday.fake.notifications == []
    for _ in range(40):  # ...and monday delivers it after we gave up: why it is not retried
        if fake_monday.fake.notifications:
            break
        await asyncio.sleep(0.05)
    assert [n.text for n in fake_monday.fake.notifications] == ["late"]


async def test_hang_without_executing_delivers_nothing(
    http: aiohttp.ClientSession, fake_monday: FakeMondayServer
) -> None:
    monday = MondayClient(http, fake_monday.api_url, "2026-07", 0.2)
    fake_monday.fake.fail_next("timeout", seconds=0.4)
    outcome = await monday.create_notification(
        KEY, user_id=MEMBER, target_id="1", text="late", target_type="Project"
    )
    assert outcome.status == "unknown"
    await asyncio.sleep(0.5)
    assert fake_monday.fake.notifications == []


async def test_rate_limit_headers_are_read(
    monday: MondayClient, fake_monday: FakeMondayServer
) -> None:
    fake_monday.fake.minute_budget = 3
    response = await monday.execute(KEY, "query { me { id } }", None)
    assert response.status == 200
    assert response.rate_limit.policies["minuteRate"].quota == 3
    assert response.rate_limit.remaining("minuteRate") == 2
    assert response.account_id == ACCOUNT
    assert response.request_id == api_calls(fake_monday)[0].request_id


async def test_oauth_exchange_and_refresh_against_the_fake(
    http: aiohttp.ClientSession, fake_monday: FakeMondayServer, monday: MondayClient
) -> None:
    fake = fake_monday.fake
    fake.issue_refresh_tokens = True
    redirect = "http://127.0.0.1:8080/oauth/callback"
    code = fake.issue_oauth_code(MEMBER, ACCOUNT, client_id=CLIENT_ID, redirect_uri=redirect)
    tokens = await exchange_code(
        http,
        token_url=fake_monday.token_url,
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        code=code,
        redirect_uri=redirect,
    )
    assert tokens.refresh_token and tokens.expires_at is not None
    assert "notifications:write" in tokens.scope
    assert tokens.access_token not in repr(tokens)
    assert (await monday.me(tokens.access_token)).id == MEMBER
    [token_call] = fake.requests_to("/oauth2/token")
    assert token_call.body["client_secret"] == CLIENT_SECRET
    assert token_call.body["redirect_uri"] == redirect

    # A code works once; the message names the problem but never the code or the secret.
    with pytest.raises(MondayError) as reused:
        await exchange_code(
            http,
            token_url=fake_monday.token_url,
            client_id=CLIENT_ID,
            client_secret=CLIENT_SECRET,
            code=code,
            redirect_uri=redirect,
        )
    assert reused.value.code == "OAUTH_INVALID_GRANT"
    assert code not in reused.value.message and CLIENT_SECRET not in reused.value.message

    renewed = await refresh(
        http,
        token_url=fake_monday.token_url,
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        refresh_token=tokens.refresh_token,
    )
    assert renewed.access_token != tokens.access_token
    assert renewed.refresh_token not in (None, tokens.refresh_token)
    assert (await monday.me(renewed.access_token)).id == MEMBER
    with pytest.raises(MondayError) as rotated:  # refresh tokens rotate
        await refresh(
            http,
            token_url=fake_monday.token_url,
            client_id=CLIENT_ID,
            client_secret=CLIENT_SECRET,
            refresh_token=tokens.refresh_token,
        )
    assert tokens.refresh_token not in rotated.value.message


async def test_oauth_legacy_token_and_wrong_secret(
    http: aiohttp.ClientSession, fake_monday: FakeMondayServer
) -> None:
    code = fake_monday.fake.issue_oauth_code(INSTALLER, ACCOUNT)
    with pytest.raises(MondayError) as bad_client:
        await exchange_code(
            http,
            token_url=fake_monday.token_url,
            client_id=CLIENT_ID,
            client_secret="wrong-secret-value",
            code=code,
            redirect_uri="http://127.0.0.1/cb",
        )
    assert bad_client.value.http_status == 401
    assert "wrong-secret-value" not in bad_client.value.message
    code = fake_monday.fake.issue_oauth_code(INSTALLER, ACCOUNT)
    legacy = await exchange_code(
        http,
        token_url=fake_monday.token_url,
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        code=code,
        redirect_uri="http://127.0.0.1/cb",
    )
    assert (legacy.refresh_token, legacy.expires_at) == (None, None)  # legacy: never expires
