"""Contract §11: "the ledger shows `attempts`, and `last_error` of every attempt that failed".
A row that failed twice and then went through shows attempts 3 and both errors in
`attempt_errors`, through REST `fields` and GraphQL; over real HTTP against the fake monday,
on SQLite and PostgreSQL (`database_url` is parametrised)."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

from tests.conftest import FakeMondayServer
from tests.delivery.helpers import post, server_on, wait_for
from tests.notifications.helpers import MEMBER


async def test_two_failed_attempts_then_sent_show_both_errors(
    tmp_path: Path, database_url: str, fake_monday: FakeMondayServer, mint: Any
) -> None:
    fake = fake_monday.fake
    async with server_on(tmp_path, fake_monday, database_url=database_url) as client:
        # Neither ran; no answer proves it, so each is `unknown` and asked again (same key).
        fake.fail_next("server_error")
        fake.fail_next("bad_gateway")
        sent = await post(client, mint, "third time lucky")
        assert sent["delivery_status"] == "unknown"
        assert [e["attempt"] for e in sent["attempt_errors"]] == [1]
        await wait_for(client, sent["id"], "sent")

        auth = {"Authorization": f"Bearer {mint(user=MEMBER)}"}
        response = await client.get(
            f"/notifications/{sent['id']}",
            params={"fields": "attempts,last_error,attempt_errors"},
            headers=auth,
        )
        assert response.status == 200, await response.text()
        rest = (await response.json())["data"]
        document = f'{{ notifications_by_id(id: "{sent["id"]}") {{ attempts attempt_errors }} }}'
        answer = await client.post("/graphql/system", json={"query": document}, headers=auth)
        graphql = (await answer.json())["data"]["notifications_by_id"]

        # "Rows that had a failed attempt": this one, not a row that went through at once.
        clean = await post(client, mint, "first time")
        assert clean["delivery_status"] == "sent" and clean["attempt_errors"] == []
        response = await client.get(
            "/notifications",
            params={"fields": "id", "filter": json.dumps({"attempt_errors": {"_nempty": True}})},
            headers=auth,
        )
        assert (await response.json())["data"] == [{"id": sent["id"]}]

    assert list(rest) == ["attempts", "last_error", "attempt_errors"]
    assert rest["attempts"] == 3
    assert rest["last_error"] is None  # the latest attempt went through
    errors = rest["attempt_errors"]
    assert [e["attempt"] for e in errors] == [1, 2]
    assert errors[0]["code"] == "INTERNAL_SERVER_ERROR"
    assert errors[1]["code"] and errors[1]["message"]
    assert set(errors[0]) == {"attempt", "at", "code", "message", "monday_request_id"}
    assert all(datetime.fromisoformat(e["at"]) for e in errors)
    assert errors[0]["at"] <= errors[1]["at"]
    assert graphql == {"attempts": 3, "attempt_errors": errors}
    # No credential in the ledger's error history.
    assert "oauth-token-of" not in json.dumps(errors)
    assert [n.text for n in fake.bell(MEMBER)] == ["third time lucky", "first time"]
