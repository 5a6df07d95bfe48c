"""Reading monday's answers (contract §6) and its rate-limit headers, shape by shape."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from server.monday.error_body import retry_after_header
from server.monday.outcome import (
    DEFAULT_RETRY_SECONDS,
    AnswerView,
    SendOutcome,
    classify_answer,
    scrub,
    seconds_until_midnight_utc,
)
from server.monday.ratelimit import parse_rate_limit, parse_structured_list

NOW = datetime(2026, 3, 1, 23, 59, 0, tzinfo=UTC)


def one(status: int, body: Any, **kwargs: Any) -> SendOutcome:
    [outcome] = classify_answer(AnswerView(status, body, **kwargs), ["n0"], now=NOW)
    return outcome


def error(code: str, message: str = "m", status_code: int = 200, **ext: Any) -> dict[str, Any]:
    return {"message": message, "extensions": {"code": code, "status_code": status_code, **ext}}


def test_sent_reads_the_id() -> None:
    outcome = one(200, {"data": {"n0": {"id": "77", "text": "t"}}}, request_id="r-1")
    assert (outcome.status, outcome.monday_id, outcome.request_id) == ("sent", "77", "r-1")


def test_http_200_errors_are_read() -> None:
    outcome = one(200, {"data": {"n0": None}, "errors": [error("InvalidArgumentException")]})
    assert (outcome.status, outcome.code) == ("failed", "InvalidArgumentException")
    missing = one(200, {"data": None, "errors": [error("missingRequiredPermissions")]})
    assert (missing.status, missing.unauthorized) == ("failed", False)


@pytest.mark.parametrize(
    "code",
    [
        "RATE_LIMIT_EXCEEDED",
        "COMPLEXITY_BUDGET_EXHAUSTED",
        "maxConcurrencyExceeded",
        "FIELD_LIMIT_EXCEEDED",
        "IP_RATE_LIMIT_EXCEEDED",
    ],
)
def test_rate_limit_codes_retry_with_retry_in_seconds(code: str) -> None:
    outcome = one(200, {"errors": [error(code, status_code=429, retry_in_seconds=21)]})
    assert (outcome.status, outcome.code, outcome.retry_after_seconds) == ("retry", code, 21.0)


def test_retry_after_header_then_ratelimit_header_then_default() -> None:
    body = {"errors": [error("RATE_LIMIT_EXCEEDED", status_code=429)]}
    assert one(429, body, retry_after="17").retry_after_seconds == 17.0
    assert one(429, body, rate_limit_retry=33).retry_after_seconds == 33.0
    assert one(429, body).retry_after_seconds == DEFAULT_RETRY_SECONDS
    # A bare 429 (no JSON at all) is still a rate limit.
    bare = one(429, None, retry_after="5")
    assert (bare.status, bare.retry_after_seconds) == ("retry", 5.0)


def test_retry_after_http_date() -> None:
    assert retry_after_header("Sun, 01 Mar 2026 23:59:30 GMT", NOW) == 30.0
    assert retry_after_header("garbage", NOW) is None


def test_daily_limit_waits_until_midnight_utc() -> None:
    outcome = one(429, {"errors": [error("DAILY_LIMIT_EXCEEDED", retry_in_seconds=5)]})
    assert (outcome.status, outcome.daily_limit, outcome.retry_after_seconds) == (
        "retry",
        True,
        60.0,
    )
    assert seconds_until_midnight_utc(datetime(2026, 3, 1, 0, 0, 0, tzinfo=UTC)) == 86400.0


def test_legacy_complexity_shape() -> None:
    body = {
        "error_code": "ComplexityException",
        "status_code": 429,
        "error_message": "Complexity budget exhausted, query cost 30 budget remaining 10 "
        "out of 1000000 reset in 14 seconds",
    }
    outcome = one(200, body)
    assert (outcome.status, outcome.code, outcome.retry_after_seconds) == (
        "retry",
        "ComplexityException",
        14.0,
    )


def test_the_three_pre_2025_error_shapes() -> None:
    only_errors = one(200, {"errors": [{"message": 'Parse error on "x"'}]})
    assert (only_errors.status, only_errors.message) == ("failed", 'Parse error on "x"')
    with_code = one(
        200,
        {
            "errors": [{"message": "bad"}],
            "error_code": "InvalidBoardIdException",
            "error_message": "Board not found",
            "status_code": 200,
        },
    )
    assert (with_code.status, with_code.code) == ("failed", "InvalidBoardIdException")
    # The bare legacy shape is a 500: monday may have executed it (contract §10).
    bare = one(500, {"error_message": "Internal server error", "status_code": 500})
    assert bare.status == "unknown" and "Internal server error" in (bare.message or "")


def test_no_readable_answer_is_unknown() -> None:
    for status in (502, 503, 504):
        assert one(status, None).status == "unknown"
    assert one(503, {"errors": [error("X")]}).status == "unknown"
    assert one(200, None).status == "unknown"  # 200 with HTML: we cannot tell
    assert one(200, {"data": {"n0": None}}).status == "unknown"  # no id, no error


def test_monday_said_no() -> None:
    # Not a "no": monday may have executed it before failing (contract §10).
    assert one(500, {"errors": [error("INTERNAL_SERVER_ERROR", status_code=500)]}).status == (
        "unknown"
    )
    forbidden = one(403, {"errors": [error("USER_ACCESS_DENIED", status_code=403)]})
    assert (forbidden.status, forbidden.code, forbidden.unauthorized) == (
        "failed",
        "USER_ACCESS_DENIED",
        False,
    )
    assert one(400, {}).code == "HTTP_400"


def test_401_and_unauthenticated_mark_the_credential() -> None:
    outcome = one(401, {"errors": [error("UNAUTHORIZED", "Unauthorized", 401)]})
    assert (outcome.status, outcome.unauthorized) == ("failed", True)
    assert one(401, None).unauthorized
    not_auth = one(200, {"errors": [{"message": "Not Authenticated"}]})
    assert (not_auth.status, not_auth.unauthorized) == ("failed", True)


def test_per_alias_errors_by_path() -> None:
    body = {
        "data": {"n0": {"id": "1"}, "n1": None, "n2": {"id": "3"}},
        "errors": [{**error("InvalidUserIdException"), "path": ["n1"]}],
    }
    outcomes = classify_answer(AnswerView(200, body), ["n0", "n1", "n2"], now=NOW)
    assert [(o.status, o.code) for o in outcomes] == [
        ("sent", None),
        ("failed", "InvalidUserIdException"),
        ("sent", None),
    ]
    # A whole-document rate limit applies to every row.
    limited = classify_answer(
        AnswerView(429, {"errors": [error("RATE_LIMIT_EXCEEDED", retry_in_seconds=2)]}),
        ["n0", "n1"],
        now=NOW,
    )
    assert [o.status for o in limited] == ["retry", "retry"]


def test_scrub_removes_the_token() -> None:
    assert scrub("token abc123secret was bad", ["abc123secret"]) == "token [redacted] was bad"
    assert scrub(None, ["x"]) is None


def test_rate_limit_headers_parse() -> None:
    info = parse_rate_limit(
        '"minuteRate";r=0;t=45, "concurrency";r=249, "complexityMinute";r=4950000;t=12',
        '"minuteRate";q=5000;w=60, "concurrency";q=250;qu="concurrent-requests", '
        '"complexityMinute";q=5000000;w=60;qu="content-bytes"',
    )
    assert info.policies["minuteRate"].quota == 5000
    assert info.policies["minuteRate"].window_seconds == 60
    assert info.policies["concurrency"].unit == "concurrent-requests"
    assert info.remaining("concurrency") == 249
    assert info.remaining("complexityMinute") == 4950000
    assert info.reset_seconds("complexityMinute") == 12
    assert info.exhausted() == ["minuteRate"]
    assert info.retry_after_seconds() == 45
    assert info.remaining("nope") is None


def test_rate_limit_headers_tolerate_garbage() -> None:
    assert parse_rate_limit(None, None).empty
    info = parse_rate_limit('minuteRate;r=oops, ;;, "ok";r=3', '"a";q="x,y";w=1')
    assert info.remaining("ok") == 3
    assert info.remaining("minuteRate") is None
    assert parse_structured_list('"a";q="x,y";w=1') == [("a", {"q": "x,y", "w": 1})]
