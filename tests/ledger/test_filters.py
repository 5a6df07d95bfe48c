"""The filter language, one operator per case, on SQLite and PostgreSQL.

Every case runs as the admin (who sees the five rows of the account) unless it names a user.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.conftest import Mint
from tests.ledger.conftest import ADMIN, ALICE, Client, bearer

ALL = ["welcome", "failed", "ping", "reply", "carol"]

VALID: list[tuple[str, Any, list[str]]] = [
    ("_eq", {"status": {"_eq": "archived"}}, ["failed"]),
    ("bare value is _eq", {"status": "archived"}, ["failed"]),
    ("_neq", {"status": {"_neq": "inbox"}}, ["failed"]),
    ("_lt", {"attempts": {"_lt": 1}}, ["ping"]),
    ("_lte", {"attempts": {"_lte": 1}}, ["welcome", "ping", "carol"]),
    ("_gt", {"attempts": {"_gt": 1}}, ["failed", "reply"]),
    ("_gte timestamp", {"timestamp": {"_gte": "2024-03-02T08:00:00Z"}}, ["reply", "carol"]),
    ("_lt timestamp with offset", {"timestamp": {"_lt": "2024-01-01T12:00:00+02:00"}}, []),
    (
        "_lte timestamp with offset",
        {"timestamp": {"_lte": "2024-01-01T12:00:00+02:00"}},
        ["welcome"],
    ),
    ("_lt date only", {"timestamp": {"_lt": "2024-02-01"}}, ["welcome"]),
    ("_eq timestamp exact", {"timestamp": {"_eq": "2024-02-01T09:30:00Z"}}, ["failed"]),
    ("_in", {"item": {"_in": ["500", "503"]}}, ["welcome", "carol"]),
    ("_in numbers on text", {"item": {"_in": [500, 503]}}, ["welcome", "carol"]),
    ("_in csv", {"item": {"_in": "500,503"}}, ["welcome", "carol"]),
    (
        "_in timestamps",
        {"timestamp": {"_in": ["2024-02-01T09:30:00Z", "2024-03-03T08:00:00Z"]}},
        ["failed", "carol"],
    ),
    ("_nin", {"item": {"_nin": ["502"]}}, ["welcome", "failed", "carol"]),
    ("_null", {"subject": {"_null": True}}, ["ping"]),
    ("_null false", {"subject": {"_null": False}}, ["welcome", "failed", "reply", "carol"]),
    ("_nnull", {"sent_at": {"_nnull": True}}, ["welcome", "reply"]),
    ("_null on json", {"last_error": {"_null": True}}, ["welcome", "ping", "reply", "carol"]),
    ("_nnull on json", {"last_error": {"_nnull": True}}, ["failed"]),
    ("_contains is case-sensitive", {"message": {"_contains": "Pipe"}}, ["failed"]),
    ("_contains misses other case", {"message": {"_contains": "pipe"}}, []),
    ("_contains wildcards are literal", {"message": {"_contains": "0%_"}}, ["ping"]),
    ("_ncontains", {"message": {"_ncontains": "o"}}, ["failed", "reply"]),
    ("_icontains", {"message": {"_icontains": "pong"}}, ["reply"]),
    ("_icontains literal %", {"message": {"_icontains": "%"}}, ["ping"]),
    ("_nicontains", {"message": {"_nicontains": "PING"}}, ["welcome", "failed", "reply", "carol"]),
    ("_starts_with", {"subject": {"_starts_with": "Re"}}, ["reply"]),
    ("_starts_with is case-sensitive", {"subject": {"_starts_with": "re"}}, []),
    ("_nstarts_with", {"subject": {"_nstarts_with": "W"}}, ["failed", "reply", "carol"]),
    ("_istarts_with", {"subject": {"_istarts_with": "re:"}}, ["reply"]),
    ("_ends_with", {"message": {"_ends_with": "failed"}}, ["failed"]),
    ("_ends_with is case-sensitive", {"message": {"_ends_with": "FAILED"}}, []),
    ("_ends_with longer than value", {"item": {"_ends_with": "x500"}}, []),
    ("_nends_with", {"message": {"_nends_with": "only"}}, ["welcome", "failed", "ping", "reply"]),
    ("_iends_with", {"message": {"_iends_with": "ABOARD"}}, ["welcome"]),
    ("_between", {"attempts": {"_between": [1, 2]}}, ["welcome", "reply", "carol"]),
    (
        "_between timestamps",
        {"timestamp": {"_between": ["2024-02-01", "2024-03-01T12:00:00Z"]}},
        ["failed", "ping"],
    ),
    ("_nbetween", {"attempts": {"_nbetween": [1, 2]}}, ["failed", "ping"]),
    ("_empty", {"subject": {"_empty": True}}, ["ping"]),
    ("_nempty", {"subject": {"_nempty": True}}, ["welcome", "failed", "reply", "carol"]),
    ("_empty on json", {"last_error": {"_empty": True}}, ["welcome", "ping", "reply", "carol"]),
    (
        "two operators on a field",
        {"attempts": {"_gte": 1, "_lt": 3}},
        ["welcome", "reply", "carol"],
    ),
    ("two fields", {"status": "inbox", "item": "502"}, ["ping", "reply"]),
    (
        "_or with nested _and",
        {
            "_or": [
                {"status": "archived"},
                {"_and": [{"recipient": {"_eq": ALICE}}, {"attempts": {"_gte": 2}}]},
            ]
        },
        ["failed", "reply"],
    ),
    ("empty _and", {"_and": []}, ALL),
    ("empty filter", {}, ALL),
    ("$NOW", {"timestamp": {"_lt": "$NOW"}}, ALL),
    ("$NOW in the future", {"next_attempt_at": {"_gt": "$NOW"}}, []),
    ("$NOW(-100 years)", {"timestamp": {"_gt": "$NOW(-100 years)"}}, ALL),
    ("$NOW(+1 day)", {"sent_at": {"_lt": "$NOW(+1 day)"}}, ["welcome", "reply"]),
    ("$NOW(-1 day) bound", {"timestamp": {"_gt": "$NOW(-1 day)"}}, []),
    ("$CURRENT_USER", {"sender": {"_eq": "$CURRENT_USER"}}, ["welcome", "failed"]),
    ("id _in", {"id": {"_in": ["1", "3"]}}, ["welcome", "ping"]),
]


async def _ids(client: Client, token: str, params: dict[str, str]) -> tuple[int, Any]:
    response = await client.get("/notifications", params=params, headers=bearer(token))
    return response.status, await response.json()


@pytest.mark.parametrize(("case", "tree", "expected"), VALID, ids=[c[0] for c in VALID])
async def test_filter_operator(
    client: Client, mint: Mint, ids: dict[str, int], case: str, tree: Any, expected: list[str]
) -> None:
    if case == "id _in":  # ids are known only once inserted
        tree = {"id": {"_in": [str(ids["welcome"]), str(ids["ping"])]}}
    status, body = await _ids(client, mint(user=ADMIN, admin=True), {"filter": json.dumps(tree)})
    assert status == 200, body
    assert [item["id"] for item in body["data"]] == sorted(ids[n] for n in expected)


async def test_bracket_notation(client: Client, mint: Mint, ids: dict[str, int]) -> None:
    token = mint(user=ADMIN, admin=True)
    cases: list[tuple[str, list[str]]] = [
        ("filter[status][_eq]=archived", ["failed"]),
        ("filter[status]=archived", ["failed"]),
        ("filter[attempts][_gt]=1", ["failed", "reply"]),
        ("filter[item][_in]=500,503", ["welcome", "carol"]),
        ("filter[item][_in][]=500&filter[item][_in][]=503", ["welcome", "carol"]),
        ("filter[attempts][_between]=1,2", ["welcome", "reply", "carol"]),
        ("filter[subject][_null]=true", ["ping"]),
        ("filter[subject][_null]=false", ["welcome", "failed", "reply", "carol"]),
        ("filter[timestamp][_gte]=2024-03-02T08:00:00Z", ["reply", "carol"]),
        (
            "filter[_or][0][status][_eq]=archived&filter[_or][1][subject][_eq]=Private",
            ["failed", "carol"],
        ),
        ("filter[_and][0][status]=inbox&filter[_and][1][item]=502", ["ping", "reply"]),
    ]
    for query, expected in cases:
        response = await client.get(f"/notifications?{query}", headers=bearer(token))
        assert response.status == 200, (query, await response.text())
        body = await response.json()
        assert [i["id"] for i in body["data"]] == sorted(ids[n] for n in expected), query


async def test_current_user_is_the_caller(client: Client, mint: Mint, ids: dict[str, int]) -> None:
    response = await client.get(
        "/notifications?filter[recipient][_eq]=$CURRENT_USER&filter[status][_eq]=inbox",
        headers=bearer(mint(user=ALICE)),
    )
    body = await response.json()
    assert [i["id"] for i in body["data"]] == sorted([ids["welcome"], ids["reply"]])


INVALID: list[tuple[str, str, str]] = [
    ("bad JSON", "{bad", "Invalid JSON for filter object"),
    ("not an object", "[1]", "Invalid filter object"),
    ("_in empty", '{"status": {"_in": []}}', "non-empty array"),
    ("_nin empty", '{"status": {"_nin": []}}', "non-empty array"),
    ("_between one value", '{"attempts": {"_between": [1]}}', "exactly two"),
    ("empty string", '{"status": {"_eq": ""}}', "_empty or _nempty"),
    ("empty string bare", '{"status": ""}', "_empty or _nempty"),
    ("null value", '{"status": {"_eq": null}}', "use _null"),
    ("unknown field", '{"nope": {"_eq": 1}}', "doesn't exist"),
    ("internal column", '{"lease_owner": {"_eq": "w"}}', "doesn't exist"),
    ("unknown operator", '{"status": {"_foo": 1}}', 'Unknown filter operator "_foo"'),
    ("regex unsupported", '{"status": {"_regex": "x"}}', "Unknown filter operator"),
    ("unknown logical operator", '{"_xor": []}', "not a logical operator"),
    ("_and not a list", '{"_and": {"status": "inbox"}}', "must be an array"),
    ("_or item not object", '{"_or": [1]}', "must be an object"),
    ("integer from text", '{"attempts": {"_eq": "abc"}}', "needs an integer"),
    ("integer from bool", '{"attempts": {"_eq": true}}', "needs an integer"),
    ("integer from fraction", '{"attempts": {"_lt": 1.5}}', "needs an integer"),
    ("unsafe integer", '{"id": {"_eq": 9007199254740993}}', "needs an integer"),
    ("text from bool", '{"status": {"_eq": true}}', "needs a string"),
    ("text from object list", '{"status": {"_in": [{"a": 1}]}}', "needs a string"),
    ("bad date", '{"timestamp": {"_gt": "yesterday"}}', "ISO 8601"),
    ("number for date", '{"timestamp": {"_gt": 5}}', "ISO 8601"),
    ("text operator on number", '{"attempts": {"_contains": "1"}}', "only applies to text"),
    ("json compared", '{"last_error": {"_eq": "x"}}', "only supports _null"),
    ("_null not boolean", '{"status": {"_null": "maybe"}}', "true or false"),
    ("relational", '{"recipient": {"email": {"_eq": "x"}}}', "no related fields"),
    ("dotted field", '{"recipient.email": {"_eq": "x"}}', "relational"),
    ("no operator", '{"status": {}}', "has no operator"),
    ("bad $NOW unit", '{"timestamp": {"_gt": "$NOW(-1 fortnight)"}}', "unknown unit"),
    ("bad $NOW syntax", '{"timestamp": {"_gt": "$NOW-1"}}', "not a valid $NOW"),
    ("unsupported variable", '{"recipient": {"_eq": "$CURRENT_ROLE"}}', "only $CURRENT_USER"),
    ("too deep", '{"_and": [' * 40 + "{}" + "]}" * 40, "nested deeper"),
]


@pytest.mark.parametrize(("case", "raw", "reason"), INVALID, ids=[c[0] for c in INVALID])
async def test_invalid_filter_is_invalid_query(
    sqlite_client: Client, mint: Mint, case: str, raw: str, reason: str
) -> None:
    status, body = await _ids(sqlite_client, mint(user=ALICE), {"filter": raw})
    assert status == 400, body
    error = body["errors"][0]
    assert error["extensions"]["code"] == "INVALID_QUERY"
    assert error["message"].startswith("Invalid query. ")
    assert reason in error["message"]
