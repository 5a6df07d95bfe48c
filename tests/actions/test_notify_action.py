"""POST /monday/actions/notify: monday's custom-action run request, end to end over HTTP."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select

from server.appkeys import ENGINE
from server.clock import frozen, utcnow
from server.monday.client import CREATE_NOTIFICATION
from server.storage.tables import notifications
from server.token_mint import mint_integration
from tests.conftest import ACCOUNT, SIGNING_SECRET, FakeMondayServer
from tests.delivery.helpers import server_on
from tests.notifications.helpers import INSTALLER, MEMBER, connect, install, row_count

PATH = "/monday/actions/notify"
AUDIENCE = "http://127.0.0.1:8080" + PATH  # settings.public_base_url in tests + the route
SHORT_LIVED = "short-lived-token-of-the-recipe"
SEVERITY_KEYS = {
    "severityCode",
    "notificationErrorTitle",
    "notificationErrorDescription",
    "runtimeErrorDescription",
}


def run_body(action_uuid: str = "a6676dce11d50b25c4871417e1e1", **fields: Any) -> dict[str, Any]:
    """A run-URL request as monday documents it (custom actions)."""
    inbound = {"userId": int(MEMBER), "itemId": 9876543210, "text": "Deal closed"}
    inbound.update(fields)
    inbound = {k: v for k, v in inbound.items() if v is not None}
    return {
        "payload": {
            "blockKind": "action",
            "credentialsValues": {},
            "inboundFieldValues": inbound,
            "inputFields": inbound,
            "recipeId": 30440660,
            "integrationId": 398759485,
        },
        "runtimeMetadata": {"actionUuid": action_uuid, "triggerUuid": "b644926b34fbabf3"},
    }


def token(*, audience: str = AUDIENCE, lifetime: int = 300, secret: str = SIGNING_SECRET) -> str:
    return mint_integration(
        secret,
        account_id=ACCOUNT,
        user_id=MEMBER,
        audience=audience,
        short_lived_token=SHORT_LIVED,
        lifetime=lifetime,
    )


async def ready(client: Any, fake: Any) -> None:
    await install(client)
    fake.add_token(SHORT_LIVED, MEMBER, ACCOUNT, "short_lived")


async def rows(client: Any) -> list[dict[str, Any]]:
    async with client.app[ENGINE].connect() as conn:
        result = await conn.execute(select(notifications).order_by(notifications.c.id))
        return [dict(r) for r in result.mappings()]


async def test_sends_as_the_app_with_the_short_lived_token(
    monday_client: Any, fake_monday: Any
) -> None:
    await ready(monday_client, fake_monday.fake)
    response = await monday_client.post(PATH, json=run_body(), headers={"Authorization": token()})
    assert response.status == 200, await response.text()
    assert await response.json() == {}
    [call] = fake_monday.fake.requests_to("/v2")
    assert call.authorization == SHORT_LIVED  # raw, no "Bearer"
    assert call.token_kind == "short_lived"
    assert call.body["query"] == CREATE_NOTIFICATION
    assert call.body["variables"] == {
        "user_id": MEMBER,
        "target_id": "9876543210",
        "text": "Deal closed",
        "target_type": "Project",
    }
    [row] = await rows(monday_client)
    assert (row["sent_as"], row["transport"], row["credential_owner"]) == (
        "app",
        "server",
        "short_lived",
    )
    assert row["delivery_status"] == "sent" and row["sender"] == MEMBER
    [bell] = fake_monday.fake.bell(MEMBER)
    assert bell.from_app and bell.text == "Deal closed"


async def test_board_id_and_bearer_prefix_are_accepted(
    monday_client: Any, fake_monday: Any
) -> None:
    await ready(monday_client, fake_monday.fake)
    body = run_body(itemId=None, boardId="123456", userId=MEMBER)
    response = await monday_client.post(
        PATH, json=body, headers={"Authorization": f"Bearer {token()}"}
    )
    assert response.status == 200, await response.text()
    [row] = await rows(monday_client)
    assert row["item"] == "123456" and row["collection"] == "Project"


async def test_a_retried_run_replays_instead_of_notifying_twice(
    monday_client: Any, fake_monday: Any
) -> None:
    await ready(monday_client, fake_monday.fake)
    headers = {"Authorization": token()}
    first = await monday_client.post(PATH, json=run_body(), headers=headers)
    again = await monday_client.post(PATH, json=run_body(), headers=headers)
    assert first.status == again.status == 200
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert len(fake_monday.fake.requests_to("/v2")) == 1
    # Another run of the same recipe is another notification.
    other = await monday_client.post(PATH, json=run_body(action_uuid="run-2"), headers=headers)
    assert other.status == 200
    assert len(fake_monday.fake.bell(MEMBER)) == 2


async def test_wrong_audience_is_401(monday_client: Any, fake_monday: Any) -> None:
    await ready(monday_client, fake_monday.fake)
    wrong = token(audience="http://127.0.0.1:8080/monday/actions/other")
    response = await monday_client.post(PATH, json=run_body(), headers={"Authorization": wrong})
    assert response.status == 401
    body = await response.json()
    assert SEVERITY_KEYS <= set(body) and body["severityCode"] == 4000
    assert body["errors"][0]["extensions"]["code"] == "TOKEN_WRONG_APP"
    assert SHORT_LIVED not in await response.text()
    assert fake_monday.fake.requests_to("/v2") == [] and await rows(monday_client) == []


async def test_expired_or_forged_token_is_401(monday_client: Any, fake_monday: Any) -> None:
    await ready(monday_client, fake_monday.fake)
    expired = await monday_client.post(
        PATH, json=run_body(), headers={"Authorization": token(lifetime=-600)}
    )
    assert expired.status == 401
    assert (await expired.json())["errors"][0]["extensions"]["code"] == "TOKEN_EXPIRED"
    forged = await monday_client.post(
        PATH,
        json=run_body(),
        headers={"Authorization": token(secret="not-the-signing-secret-of-this-app-at-all")},
    )
    assert forged.status == 401
    assert (await forged.json())["errors"][0]["extensions"]["code"] == "TOKEN_INVALID_SIGNATURE"
    missing = await monday_client.post(PATH, json=run_body())
    assert missing.status == 401
    assert fake_monday.fake.requests_to("/v2") == [] and await rows(monday_client) == []


async def test_missing_or_bad_fields_answer_the_action_error_format(
    monday_client: Any, fake_monday: Any
) -> None:
    await ready(monday_client, fake_monday.fake)
    headers = {"Authorization": token()}
    cases = [
        (run_body(action_uuid="1", userId=None), 422, "userId"),
        (run_body(action_uuid="2", itemId=None), 422, "itemId"),
        (run_body(action_uuid="3", text=None), 422, "text"),
        (run_body(action_uuid="4", userId="someone"), 422, "userId"),
        (run_body(action_uuid="5", text="   "), 422, "text"),
        ({"inboundFieldValues": {}}, 400, "payload"),
    ]
    for body, status, named in cases:
        response = await monday_client.post(PATH, json=body, headers=headers)
        assert response.status == status, (body, await response.text())
        answer = await response.json()
        assert SEVERITY_KEYS <= set(answer), answer
        assert answer["severityCode"] == 4000
        assert named in answer["notificationErrorDescription"], (named, answer)
        assert answer["errors"][0]["extensions"]["code"] == "INVALID_PAYLOAD"
    malformed = await monday_client.post(PATH, data=b"{nope", headers=headers)
    assert malformed.status == 400
    assert (await malformed.json())["severityCode"] == 4000
    assert fake_monday.fake.requests_to("/v2") == [] and await rows(monday_client) == []


async def test_monday_refusing_the_notification_is_an_action_error(
    monday_client: Any, fake_monday: Any
) -> None:
    await ready(monday_client, fake_monday.fake)
    response = await monday_client.post(
        PATH, json=run_body(userId=999), headers={"Authorization": token()}
    )
    assert response.status == 422
    body = await response.json()
    assert body["severityCode"] == 4000
    assert body["errors"][0]["extensions"]["code"] == "InvalidUserIdException"
    [row] = await rows(monday_client)
    assert row["delivery_status"] == "failed"
    assert str(row["id"]) in body["runtimeErrorDescription"]


async def test_rate_limited_send_is_accepted_and_retried_later(
    monday_client: Any, fake_monday: Any
) -> None:
    await ready(monday_client, fake_monday.fake)
    fake_monday.fake.fail_next("rate_limit", retry_in_seconds=30)
    response = await monday_client.post(PATH, json=run_body(), headers={"Authorization": token()})
    assert response.status == 200
    [row] = await rows(monday_client)
    assert row["delivery_status"] == "retry_scheduled"


async def test_sender_refusals_use_monday_severity(monday_client: Any, fake_monday: Any) -> None:
    await install(monday_client, installed=False)
    fake_monday.fake.add_token(SHORT_LIVED, MEMBER, ACCOUNT, "short_lived")
    response = await monday_client.post(PATH, json=run_body(), headers={"Authorization": token()})
    assert response.status == 409
    body = await response.json()
    assert body["severityCode"] == 6000 and body["disableErrorDescription"]
    assert body["errors"][0]["extensions"]["code"] == "APP_NOT_INSTALLED"

    no_token = mint_integration(
        SIGNING_SECRET,
        account_id=ACCOUNT,
        user_id=MEMBER,
        audience=AUDIENCE,
        short_lived_token=None,
    )
    await install(monday_client)
    response = await monday_client.post(
        PATH, json=run_body(action_uuid="x2"), headers={"Authorization": no_token}
    )
    assert response.status == 409
    body = await response.json()
    assert body["severityCode"] == 4000
    assert body["errors"][0]["extensions"]["code"] == "NO_CREDENTIAL"
    assert await row_count(monday_client) == 0 and fake_monday.fake.requests_to("/v2") == []


async def test_policy_installer_refuses_an_automation_and_says_why(
    monday_client: Any, fake_monday: Any
) -> None:
    """An automation sends only as the app, with its short-lived token (contract §10). Under
    policy `installer` nothing is usable (§5: NO_CREDENTIAL), even with the installer's key
    connected, and the message says it is the policy: it does not ask for the key already
    there."""
    await install(monday_client, policy="installer")
    await connect(monday_client, fake_monday.fake, user=INSTALLER, kind="api_key")
    fake_monday.fake.add_token(SHORT_LIVED, MEMBER, ACCOUNT, "short_lived")
    response = await monday_client.post(PATH, json=run_body(), headers={"Authorization": token()})
    assert response.status == 409
    body = await response.json()
    assert body["severityCode"] == 4000
    assert body["errors"][0]["extensions"]["code"] == "NO_CREDENTIAL"
    assert "policy (installer)" in body["notificationErrorDescription"]
    assert "API key" not in body["notificationErrorDescription"]
    assert await row_count(monday_client) == 0 and fake_monday.fake.requests_to("/v2") == []


async def test_no_answer_from_monday_says_the_server_sends_it_again(
    monday_client: Any, fake_monday: Any
) -> None:
    """`unknown`: the action fails with what the server does next (the same request again,
    delivered at most once), not a promise that it will not be retried."""
    await ready(monday_client, fake_monday.fake)
    fake_monday.fake.fail_next("server_error")
    response = await monday_client.post(PATH, json=run_body(), headers={"Authorization": token()})
    assert response.status == 422
    body = await response.json()
    assert body["errors"][0]["extensions"]["code"] == "DELIVERY_UNKNOWN"
    assert "sends the same request again" in body["notificationErrorDescription"]
    assert "not retried" not in body["notificationErrorDescription"]
    [row] = await rows(monday_client)
    assert row["delivery_status"] == "unknown" and row["delivery_request_key"] is not None


async def test_over_the_send_limit_is_429_with_retry_after(
    tmp_path: Path, database_url: str, fake_monday: FakeMondayServer
) -> None:
    """Contract §11: beyond the user's backlog the run is refused with 429 REQUESTS_EXCEEDED
    and Retry-After, in the action-error format; the run's key is not kept, so monday's retry
    after waiting sends it."""
    settings = {"database_url": database_url, "send_rate_per_minute": 1, "send_backlog_per_user": 0}
    async with server_on(tmp_path, fake_monday, **settings) as client:
        fake_monday.fake.add_token(SHORT_LIVED, MEMBER, ACCOUNT, "short_lived")
        headers = {"Authorization": token()}
        first = await client.post(PATH, json=run_body(action_uuid="run-1"), headers=headers)
        assert first.status == 200, await first.text()
        # With a run id (under its key) and without one.
        for body in (run_body(action_uuid="run-2"), {"payload": run_body()["payload"]}):
            refused = await client.post(PATH, json=body, headers=headers)
            assert refused.status == 429
            assert int(refused.headers["Retry-After"]) >= 1
            answer = await refused.json()
            assert answer["severityCode"] == 4000
            assert answer["errors"][0]["extensions"]["code"] == "REQUESTS_EXCEEDED"
        with frozen(utcnow() + timedelta(seconds=61)):
            again = await client.post(PATH, json=run_body(action_uuid="run-2"), headers=headers)
        assert again.status == 200 and "Idempotent-Replayed" not in again.headers
    assert len(fake_monday.fake.bell(MEMBER)) == 2
