"""Which filters keep one user's received or sent rows (notifications/filter_owner.py): the
shapes an admin's read may run as that user's two arms, and the ones it must not."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from server.notifications.filters import Context, compile_filter
from server.notifications.query import parse_query

ME = "12"


CTX = Context(user_id=ME, now=datetime.now(UTC))


def owner(tree: Any) -> str | None:
    return parse_query({"filter": json.dumps(tree)}, CTX).owner


RECEIVED = {"recipient": {"_eq": "$CURRENT_USER"}}
SENT = {"sender": {"_eq": "$CURRENT_USER"}}


@pytest.mark.parametrize(
    ("tree", "expected"),
    [
        ({"_or": [RECEIVED, SENT]}, ME),
        ({"_or": [SENT, RECEIVED]}, ME),
        ({"_or": [{"recipient": "15"}, {"sender": {"_eq": "15"}}]}, "15"),
        ({"_or": [RECEIVED, SENT], "status": {"_eq": "inbox"}}, ME),
        ({"_and": [{"status": {"_eq": "inbox"}}, {"_and": [{"_or": [RECEIVED, SENT]}]}]}, ME),
        ({"_or": [{"recipient": 15}, {"sender": "15"}]}, "15"),
    ],
    ids=["widget", "either-order", "bare-value", "with-more", "nested-and", "number"],
)
def test_filters_that_keep_one_users_rows(tree: Any, expected: str) -> None:
    assert owner(tree) == expected


@pytest.mark.parametrize(
    "tree",
    [
        {"recipient": {"_eq": "$CURRENT_USER"}},
        {"_or": [{"recipient": {"_eq": "12"}}, {"sender": {"_eq": "13"}}]},
        {"_or": [RECEIVED, SENT, {"status": {"_eq": "inbox"}}]},
        {"_or": [RECEIVED, {"sender": {"_neq": "$CURRENT_USER"}}]},
        {"_or": [RECEIVED, {"sender": {"_eq": "12", "_neq": "13"}}]},
        {"_or": [RECEIVED, RECEIVED]},
        {"_or": [RECEIVED, {"sender": {"_in": ["12"]}}]},
        {"_or": [{**RECEIVED, **SENT}, {"status": {"_eq": "inbox"}}]},
        {"_or": [{"_or": [RECEIVED, SENT]}, {"status": {"_eq": "inbox"}}]},
        {"_or": [{"recipient": {"_eq": "12"}}, {"credential_owner": {"_eq": "12"}}]},
    ],
    ids=[
        "received-only",
        "two-users",
        "a-third-arm",
        "not-equal",
        "two-operators",
        "one-role-twice",
        "in-list",
        "both-in-one-arm",
        "or-inside-or",
        "another-field",
    ],
)
def test_filters_that_do_not(tree: Any) -> None:
    assert owner(tree) is None


def test_no_filter_has_no_owner() -> None:
    assert parse_query({}, Context(user_id=ME, now=datetime.now(UTC))).owner is None


@pytest.mark.parametrize(
    ("tree", "rest"),
    [
        ({"_or": [RECEIVED, SENT]}, None),
        ({"_or": [RECEIVED, SENT], "status": {"_eq": "inbox"}}, {"status": {"_eq": "inbox"}}),
        (
            {"_and": [{"status": {"_eq": "inbox"}}, {"_and": [{"_or": [RECEIVED, SENT]}]}]},
            {"status": {"_eq": "inbox"}},
        ),
        (
            # Only the first owner condition is taken out; a second one stays in the rest.
            {"_and": [{"_or": [RECEIVED, SENT]}, {"_or": [SENT, RECEIVED]}]},
            {"_or": [SENT, RECEIVED]},
        ),
    ],
    ids=["alone", "beside-a-rule", "nested-and", "twice"],
)
def test_the_rest_of_the_filter_is_kept_apart(tree: Any, rest: Any) -> None:
    query = parse_query({"filter": json.dumps(tree)}, CTX)
    assert query.owner == ME
    expected = None if rest is None else compile_filter(rest, CTX)
    assert str(query.beside_owner) == str(expected)
    assert str(query.where) == str(compile_filter(tree, CTX)), "the whole filter, unchanged"
