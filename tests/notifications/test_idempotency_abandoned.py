"""Contract §6 after a crash: a key whose first request was killed before answering.

The reservation stays without an answer; once its request can no longer be running, the next
request with the key and body sends nothing and answers from the rows that request wrote, as
they are now, and that answer is kept. While it may still be running: 409
IDEMPOTENCY_IN_FLIGHT with `Retry-After`. REST, `/v2` and the automation action, on SQLite
and PostgreSQL.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
from sqlalchemy import select

from server.app import create_app
from server.appkeys import ENGINE, SERVICES
from server.clock import frozen
from server.notifications.idempotency import body_digest
from server.notifications.model import AuditEntry, KeyReservation, NewNotification
from server.storage.notifications import SqlNotificationRows
from server.storage.tables import idempotency_keys, notifications
from server.token_mint import mint_integration
from tests.conditions import until, until_true
from tests.conftest import (
    ACCOUNT,
    SIGNING_SECRET,
    FakeMondayServer,
    fake_monday_settings,
    start_app,
)
from tests.delivery.procs import ServerProcess, seed
from tests.notifications.helpers import MEMBER, notification, row_count

ACTION = "/monday/actions/notify"
SHORT_LIVED = "short-lived-token-of-the-recipe"
REST_BODY = notification(message="rest, killed mid-request")
V2_BODY = {
    "query": "mutation { a: create_notification(user_id: 12, target_id: 5550001, "
    'text: "v2, killed mid-request", target_type: Project) { id text } }'
}
ACTION_BODY = {
    "payload": {
        "inboundFieldValues": {"userId": 12, "itemId": 5550001, "text": "action, killed"},
        "recipeId": 30440660,
        "integrationId": 398759485,
    },
    "runtimeMetadata": {"actionUuid": "run-killed-mid-request", "triggerUuid": "t-1"},
}


@contextmanager
def later(minutes: float) -> Iterator[None]:
    """The product clock `minutes` ahead of the system clock (and moving with it)."""
    with frozen(lambda: datetime.now(UTC) + timedelta(minutes=minutes)):
        yield


def requests(session: str, integration: str) -> list[tuple[str, Any, dict[str, str]]]:
    """(path, body, headers) of one keyed request per surface."""
    return [
        ("/notifications", REST_BODY, {"Authorization": session, "Idempotency-Key": "k-rest"}),
        ("/v2", V2_BODY, {"Authorization": session, "Idempotency-Key": "k-v2"}),
        (ACTION, ACTION_BODY, {"Authorization": integration}),
    ]


def integration_token(audience: str) -> str:
    return mint_integration(
        SIGNING_SECRET,
        account_id=ACCOUNT,
        user_id=MEMBER,
        audience=audience,
        short_lived_token=SHORT_LIVED,
        lifetime=600,
    )


def final(row: dict[str, Any]) -> bool:
    """Nothing more will happen to the row (an `unknown` one is not due for a retry)."""
    status = row["delivery_status"]
    return status in ("sent", "failed") or (status == "unknown" and row["next_attempt_at"] is None)


async def rows_by_message(client: Any) -> dict[str, dict[str, Any]]:
    async with client.app[ENGINE].connect() as conn:
        result = await conn.execute(select(notifications))
        return {row["message"]: dict(row) for row in result.mappings()}


async def test_a_key_whose_request_was_killed_answers_from_its_rows(
    tmp_path: Path, empty_database_url: str, fake_monday: FakeMondayServer, mint: Any
) -> None:
    database_url = empty_database_url
    await seed(database_url, fake_monday)
    fake = fake_monday.fake
    fake.add_token(SHORT_LIVED, MEMBER, ACCOUNT, "short_lived")
    server = ServerProcess(tmp_path / "run", database_url, fake_monday.api_url)
    await server.start()
    session, integration = mint(user=MEMBER), integration_token(server.url + ACTION)
    calls = requests(session, integration)
    async with aiohttp.ClientSession() as http:
        # One send first, so monday's budget is known (PostgreSQL shares it: until it is,
        # one call probes it and the others wait, answering `retry_scheduled`).
        warm = notification(message="warm-up")
        async with http.post(
            server.url + "/notifications", json=warm, headers={"Authorization": session}
        ) as response:
            assert (await response.json())["data"]["delivery_status"] == "sent"
    # monday runs each notification at once, then holds the answer back: the requests are
    # in flight, their rows `sending`, when the process dies.
    fake.fail_next("execute-then-hang", count=3, seconds=600)

    async def call(http: aiohttp.ClientSession, path: str, body: Any, headers: Any) -> None:
        try:
            async with http.post(server.url + path, json=body, headers=headers) as response:
                raise AssertionError(f"{path} answered {await response.text()} before the kill")
        except aiohttp.ClientError:
            pass  # the process was killed mid-request

    try:
        async with aiohttp.ClientSession() as http:
            sending = [asyncio.ensure_future(call(http, *c)) for c in calls]
            await until(lambda: len(fake.bell(MEMBER)) == 4, "the three sends never reached monday")
            await server.kill()
            await asyncio.gather(*sending)
    finally:
        await server.kill()
    for hung in list(fake.background):
        hung.cancel()  # monday finishes what the dead caller asked (it keeps each answer)

    # A fresh instance on the database, once the killed requests cannot be running any more.
    settings = fake_monday_settings(
        tmp_path, fake_monday, database_url=database_url, public_base_url=server.url
    )
    with later(minutes=5):
        async for client in start_app(create_app(settings)):
            # The worker finishes the rows (same monday request and key: monday replays).
            async def finished(client: Any = client) -> bool:
                return all(map(final, (await rows_by_message(client)).values()))

            await until_true(finished, "the worker never finished the killed requests' rows")
            rows = await rows_by_message(client)
            answers = []
            for path, body, headers in calls:
                response = await client.post(path, json=body, headers=headers)
                assert response.headers.get("Idempotent-Replayed") == "true", path
                answers.append((response.status, await response.json()))

            (rest_status, rest), (v2_status, v2), (action_status, action) = answers
            rest_row = rows["rest, killed mid-request"]
            assert rest_status == 200
            assert rest["data"]["id"] == rest_row["id"]
            assert rest["data"]["delivery_status"] == rest_row["delivery_status"] == "sent"
            assert v2_status == 200
            assert v2["data"] == {
                "a": {
                    "id": str(rows["v2, killed mid-request"]["id"]),
                    "text": "v2, killed mid-request",
                }
            }
            # The automation's row lost its short-lived token with the process, so the worker
            # may not be able to ask monday again: the answer says what the row shows.
            action_row = rows["action, killed"]
            expected = {"sent": 200, "failed": 422, "unknown": 422}
            assert action_status == expected[action_row["delivery_status"]], action
            if action_status == 200:
                assert action == {}
            elif action_row["delivery_status"] == "unknown":
                assert action["errors"][0]["extensions"]["code"] == "DELIVERY_UNKNOWN"

            # That answer is now the key's: replayed as it is, nothing sent.
            for (path, body, headers), (status, answer) in zip(calls, answers, strict=True):
                again = await client.post(path, json=body, headers=headers)
                assert again.status == status
                if path != "/v2":  # /v2 carries the request's own request_id
                    assert await again.json() == answer
            async with client.app[ENGINE].connect() as conn:
                kept = await conn.execute(select(idempotency_keys.c.response_status))
                assert sorted(kept.scalars()) == sorted([rest_status, v2_status, action_status])
    assert sorted(n.text for n in fake.bell(MEMBER)) == [
        "action, killed",
        "rest, killed mid-request",
        "v2, killed mid-request",
        "warm-up",
    ]


async def reserve_with_a_row(client: Any, key: str, body: Any, message: str) -> None:
    """What a request leaves once its insert committed: the key reserved with its row."""
    row = NewNotification(
        recipient=MEMBER,
        message=message,
        collection="Project",
        item="5550001",
        subject=None,
        sent_as="app",
        transport="server",
        credential_owner=MEMBER,
    )
    audit = AuditEntry(ACCOUNT, MEMBER, "rest", None, "app_then_installer", "decided", "test")
    await SqlNotificationRows(client.app[ENGINE]).insert(
        account_id=ACCOUNT,
        sender=MEMBER,
        rows=[row],
        audits=[audit],
        idempotency_key=None,
        lease_owner="a-request-still-running",
        reserve=KeyReservation(ACCOUNT, MEMBER, key, body_digest(body)),
    )


async def test_a_key_whose_request_may_still_run_is_409_with_retry_after(
    engine_client: Any, fake_monday: Any, mint: Any
) -> None:
    client = engine_client
    client.app[SERVICES].idempotency.wait_for_first = 0.1
    calls = requests(mint(user=MEMBER), integration_token("http://127.0.0.1:8080" + ACTION))
    keys = ["k-rest", "k-v2", "monday-action:run-killed-mid-request"]
    for (path, body, _), key in zip(calls, keys, strict=True):
        await reserve_with_a_row(client, key, body, f"pending {path}")
    bound = client.app[SERVICES].idempotency.abandoned_after.total_seconds()
    for path, body, headers in calls:
        response = await client.post(path, json=body, headers=headers)
        assert response.status == 409, (path, await response.text())
        assert 1 <= int(response.headers["Retry-After"]) <= bound, path
        assert "IDEMPOTENCY_IN_FLIGHT" in await response.text()
    assert fake_monday.fake.requests_to("/v2") == []


async def test_a_reused_key_of_an_abandoned_reservation_is_still_refused(
    engine_client: Any, fake_monday: Any, mint: Any
) -> None:
    client = engine_client
    await reserve_with_a_row(client, "k-rest", REST_BODY, "first")
    headers = {"Authorization": mint(user=MEMBER), "Idempotency-Key": "k-rest"}
    with later(minutes=5):
        other = await client.post("/notifications", json=notification(), headers=headers)
        assert other.status == 422
        assert (await other.json())["errors"][0]["extensions"]["code"] == "IDEMPOTENCY_KEY_REUSED"
        same = await client.post("/notifications", json=REST_BODY, headers=headers)
    assert same.status == 200
    assert same.headers.get("Idempotent-Replayed") == "true"
    assert (await same.json())["data"]["message"] == "first"
    assert await row_count(client) == 1  # nothing written, so nothing sent, for the key
