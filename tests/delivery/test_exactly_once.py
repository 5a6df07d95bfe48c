"""Contract §11 over real HTTP against the fake monday, on SQLite and PostgreSQL: every
request carries an Idempotency-Key stable for that exact request; `unknown` rows are asked
again with the same request and key while the window lasts, and end `sent` with monday
having run them once; past the window a row stays `unknown`."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from server.appkeys import SERVICES
from server.clock import frozen
from tests.conftest import FakeMondayServer
from tests.delivery.helpers import post, row, server_on, wait_for
from tests.notifications.helpers import MEMBER

KEY_SHAPE = re.compile(r"^[0-9a-f]{64}$")


def keys(fake_monday: FakeMondayServer) -> list[str]:
    return [r.headers.get("idempotency-key", "") for r in fake_monday.fake.requests_to("/v2")]


async def test_every_request_has_a_key_of_its_own_rows(
    tmp_path: Path, database_url: str, fake_monday: FakeMondayServer, mint: Any
) -> None:
    async with server_on(tmp_path, fake_monday, database_url=database_url) as client:
        one = await post(client, mint, "one")
        two = await post(client, mint, "two")
        batch = await client.post(
            "/notifications",
            json=[
                {"recipient": MEMBER, "message": f"b{i}", "collection": "Project", "item": "5"}
                for i in range(3)
            ],
            headers={"Authorization": mint(user=MEMBER)},
        )
        assert batch.status == 200, await batch.text()
    assert one["delivery_status"] == two["delivery_status"] == "sent"
    sent = keys(fake_monday)
    assert len(sent) == 3  # one request per POST (the three rows are one aliased document)
    assert all(KEY_SHAPE.match(key) for key in sent)
    assert len(set(sent)) == 3  # different rows, different requests, different keys


@pytest.mark.parametrize(
    "kind", ["execute-then-hang", "execute-then-500", "execute-then-connection-reset"]
)
async def test_executed_without_an_answer_ends_sent_once(
    tmp_path: Path, database_url: str, fake_monday: FakeMondayServer, mint: Any, kind: str
) -> None:
    fake = fake_monday.fake
    async with server_on(
        tmp_path, fake_monday, database_url=database_url, monday_timeout_seconds=0.5
    ) as client:
        fake.fail_next(kind)
        sent = await post(client, mint, f"once {kind}")
        assert sent["delivery_status"] == "unknown"
        assert sent["next_attempt_at"] is not None  # it will be asked again
        done = await wait_for(client, sent["id"], "sent")
    assert [n.text for n in fake.bell(MEMBER)] == [f"once {kind}"]
    sent_keys = keys(fake_monday)
    assert len(sent_keys) >= 2 and len(set(sent_keys)) == 1  # the retry reused the key
    replays = [r for r in fake.requests_to("/v2")[1:]]
    assert replays, "no retry reached monday"
    assert done["attempts"] == len(sent_keys)
    assert done["monday_id"] == fake.bell(MEMBER)[0].monday_id


async def test_a_batch_is_retried_as_the_same_document(
    tmp_path: Path, database_url: str, fake_monday: FakeMondayServer, mint: Any
) -> None:
    fake = fake_monday.fake
    async with server_on(tmp_path, fake_monday, database_url=database_url) as client:
        fake.fail_next("execute-then-500")
        response = await client.post(
            "/notifications",
            json=[
                {"recipient": MEMBER, "message": f"b{i}", "collection": "Project", "item": "5"}
                for i in range(4)
            ],
            headers={"Authorization": mint(user=MEMBER)},
        )
        rows = (await response.json())["data"]
        assert {r["delivery_status"] for r in rows} == {"unknown"}
        for r in rows:
            await wait_for(client, r["id"], "sent")
    calls = fake.requests_to("/v2")
    assert len(calls) == 2
    assert calls[0].raw_body == calls[1].raw_body  # the very same request
    assert sorted(n.text for n in fake.bell(MEMBER)) == ["b0", "b1", "b2", "b3"]


@pytest.mark.parametrize(("minutes", "expected"), [(24, "sent"), (26, "unknown")])
async def test_retried_only_within_25_minutes_of_the_first_attempt(
    tmp_path: Path,
    database_url: str,
    fake_monday: FakeMondayServer,
    mint: Any,
    minutes: int,
    expected: str,
) -> None:
    fake = fake_monday.fake
    async with server_on(
        tmp_path, fake_monday, database_url=database_url, delivery_poll_seconds=3600
    ) as client:
        fake.fail_next("server_error")  # ran nothing, but we cannot know that
        sent = await post(client, mint, "late")
        assert sent["delivery_status"] == "unknown"
        later = datetime.now(UTC) + timedelta(minutes=minutes)
        with frozen(lambda: later):
            handled = await client.app[SERVICES].worker.run_once()
            found = await row(client, sent["id"])
    assert found["delivery_status"] == expected
    if expected == "unknown":
        assert handled == 0
        assert len(fake.requests_to("/v2")) == 1
        assert fake.bell(MEMBER) == []
    else:
        assert len(set(keys(fake_monday))) == 1
        assert [n.text for n in fake.bell(MEMBER)] == ["late"]


async def test_a_reused_row_id_is_a_new_request(
    tmp_path: Path, database_url: str, fake_monday: FakeMondayServer, mint: Any
) -> None:
    """SQLite gives the id of a deleted newest row to the next insert. The same notification
    sent again after that delete is a new request: monday must not replay the old answer
    (which would count it `sent` with nothing in the bell)."""
    async with server_on(tmp_path, fake_monday, database_url=database_url) as client:
        first = await post(client, mint, "same words")
        assert first["delivery_status"] == "sent"
        deleted = await client.delete(
            f"/notifications/{first['id']}", headers={"Authorization": mint(user=MEMBER)}
        )
        assert deleted.status == 204, await deleted.text()
        again = await post(client, mint, "same words")
    assert again["delivery_status"] == "sent"
    sent = keys(fake_monday)
    assert len(sent) == 2 and sent[0] != sent[1]
    assert [n.text for n in fake_monday.fake.bell(MEMBER)] == ["same words", "same words"]


async def test_a_credential_monday_rejects_on_a_retry_is_not_used_again(
    tmp_path: Path, database_url: str, fake_monday: FakeMondayServer, mint: Any
) -> None:
    """A 401 to a retry says nothing of the first attempt (the row stays `unknown`), but it
    does say monday rejects the credential now: it needs reconnecting, like after a 401 to a
    first attempt, and no further retry uses it."""
    fake = fake_monday.fake
    async with server_on(tmp_path, fake_monday, database_url=database_url) as client:
        fake.fail_next("server_error")
        fake.fail_next("unauthorized")
        sent = await post(client, mint, "rejected later")
        assert sent["delivery_status"] == "unknown"

        async def flagged() -> bool:
            view = await client.get("/installation", headers={"Authorization": mint(user=MEMBER)})
            credentials = (await view.json())["data"]["credentials"]
            return any(c["needs_reconnect"] for c in credentials)

        async def settled() -> dict[str, Any]:
            while True:
                current = await row(client, sent["id"])
                if current["attempts"] >= 2 and current["lease_owner"] is None:
                    return current
                await asyncio.sleep(0.05)

        final = await asyncio.wait_for(settled(), timeout=30)
        assert await flagged()
    assert final["delivery_status"] == "unknown"
    assert len(fake.requests_to("/v2")) == 2  # the first attempt and the rejected retry
