"""Contract §10: a mutation monday may have executed (any 5xx, `INTERNAL_SERVER_ERROR`, no
answer) is `unknown`, never `failed`: the fake monday puts the notification in the bell and
then answers with an error, and the ledger must not claim it was not delivered."""

from __future__ import annotations

from typing import Any

import pytest

from server.monday.outcome import AnswerView, classify_answer
from tests.conftest import FakeMondayServer
from tests.notifications.helpers import MEMBER, connect, install, notification


def _internal(status_code: int = 500, **extra: Any) -> dict[str, Any]:
    return {
        "message": "Internal Server Error",
        "extensions": {"code": "INTERNAL_SERVER_ERROR", "status_code": status_code},
        **extra,
    }


@pytest.mark.parametrize(
    ("http_status", "body"),
    [
        (500, {"errors": [_internal()]}),
        (500, {"error_message": "Internal server error", "status_code": 500}),  # legacy shape
        (500, {}),
        (500, None),
        (501, {"errors": [{"message": "anything"}]}),
        (200, {"data": None, "errors": [_internal()]}),
        (200, {"data": {"n0": None}, "errors": [_internal(path=["n0"])]}),
        (200, {"error_message": "Internal server error", "status_code": 500}),
    ],
)
def test_maybe_executed_answers_are_unknown(http_status: int, body: Any) -> None:
    [outcome] = classify_answer(AnswerView(http_status, body), ["n0"])
    assert outcome.status == "unknown"


def test_a_batch_keeps_its_sent_rows_and_only_the_broken_alias_is_unknown() -> None:
    body = {
        "data": {"n0": {"id": "1"}, "n1": None, "n2": None},
        "errors": [
            _internal(200, path=["n1"]),
            {
                "message": "bad user",
                "path": ["n2"],
                "extensions": {"code": "InvalidUserIdException"},
            },
        ],
    }
    outcomes = classify_answer(AnswerView(200, body), ["n0", "n1", "n2"])
    assert [o.status for o in outcomes] == ["sent", "unknown", "failed"]


def test_proven_not_executed_is_still_retried() -> None:
    limited = {"errors": [{"message": "m", "extensions": {"code": "RATE_LIMIT_EXCEEDED"}}]}
    assert classify_answer(AnswerView(429, limited), ["n0"])[0].status == "retry"
    budget = {"errors": [{"message": "m", "extensions": {"code": "COMPLEXITY_BUDGET_EXHAUSTED"}}]}
    assert classify_answer(AnswerView(200, budget), ["n0"])[0].status == "retry"


@pytest.mark.parametrize("answer_status", [500, 200])
async def test_executed_then_error_is_unknown_and_the_bell_has_it(
    monday_client: Any, fake_monday: FakeMondayServer, mint: Any, answer_status: int
) -> None:
    fake = fake_monday.fake
    await install(monday_client)
    await connect(monday_client, fake, user=MEMBER, kind="oauth")
    fake.fail_next("server_error", executes=True, status=answer_status)
    response = await monday_client.post(
        "/notifications",
        json=notification(message="executed, then an error"),
        headers={"Authorization": mint(user=MEMBER)},
    )
    assert response.status == 200, await response.text()
    row = (await response.json())["data"]

    assert [n.text for n in fake.bell(MEMBER)] == ["executed, then an error"]
    assert row["delivery_status"] == "unknown"
    assert row["last_error"]["code"] == "INTERNAL_SERVER_ERROR"
    assert row["last_error"]["monday_request_id"]
    assert len(fake.requests_to("/v2")) == 1
