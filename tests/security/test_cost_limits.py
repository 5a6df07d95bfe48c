"""A GraphQL document may return at most 10,000 rows in total, across all its aliases and
fragments, and is refused before anything runs when it could return more (contract §10)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import INSTALLER, Mint
from tests.ledger.conftest import insert_rows, row
from tests.notifications.helpers import connect, install, row_count

MAX_ROWS = 10_000  # contract §10


async def graphql(client: Any, mint: Mint, query: str, **variables: Any) -> tuple[int, Any]:
    response = await client.post(
        "/graphql/system",
        json={"query": query, "variables": variables},
        headers={"Authorization": mint(user=INSTALLER, admin=True)},
    )
    return response.status, await response.json()


def aliases(count: int, limit: str) -> str:
    return " ".join(f"a{i}: notifications(limit: {limit}) {{ id }}" for i in range(count))


def assert_rows_refused(status: int, body: Any) -> None:
    assert status == 400, body
    [error] = body["errors"]
    assert error["extensions"]["code"] == "GRAPHQL_VALIDATION"
    assert error["extensions"]["limit"] == "rows"
    assert error["extensions"]["maximum"] == MAX_ROWS
    assert str(MAX_ROWS) in error["message"]


@pytest.mark.parametrize(
    "query",
    [
        "{ " + aliases(30, "-1") + " }",
        "{ " + aliases(2, "-1") + " }",
        "{ " + aliases(3, "5000") + " }",
        # An explicit limit in a variable, and a declared default, count as what they say.
        "query ($n: Int) { " + aliases(2, "$n") + " }",
        "query ($m: Int = -1) { " + aliases(2, "$m") + " }",
        # Fragments count as often as they are spread.
        "{ ...A ...B } fragment A on Query { a: notifications(limit: -1) { id } } "
        "fragment B on Query { b: notifications(limit: -1) { id } }",
        # Grouped aggregates return a row per group.
        '{ a: notifications_aggregated(groupBy: ["id"], limit: -1) { countAll } '
        'b: notifications_aggregated(groupBy: ["id"], limit: -1) { countAll } }',
    ],
    ids=["30-aliases", "2-aliases", "3x5000", "variable", "default", "fragments", "groupBy"],
)
async def test_over_the_row_cap_is_refused_before_running(
    client: Any, mint: Mint, query: str
) -> None:
    await insert_rows(client, row(recipient=INSTALLER))
    status, body = await graphql(client, mint, query, n=-1)
    assert_rows_refused(status, body)
    assert "data" not in body


@pytest.mark.parametrize(
    "query",
    [
        "{ " + aliases(1, "-1") + " }",
        "{ " + aliases(2, "5000") + " }",
        "{ " + aliases(30, "100") + " }",
        "{ " + " ".join(f"a{i}: notifications {{ id }}" for i in range(30)) + " }",
    ],
    ids=["one-unbounded", "2x5000", "30x100", "30-default"],
)
async def test_within_the_row_cap_runs(client: Any, mint: Mint, query: str) -> None:
    ids = await insert_rows(client, *(row(recipient=INSTALLER) for _ in range(3)))
    status, body = await graphql(client, mint, query)
    assert status == 200, body
    assert "errors" not in body
    for answer in body["data"].values():
        assert sorted(int(item["id"]) for item in answer) == sorted(ids)


def doubling_fragments(levels: int, on: str, selection: str) -> str:
    """Each fragment spreads the next twice: 2**levels copies of `selection` when expanded."""
    spreads = " ".join(
        f"fragment F{i} on {on} {{ ...F{i + 1} ...F{i + 1} }}" for i in range(levels)
    )
    return spreads + f" fragment F{levels} on {on} {{ {selection} }}"


async def test_exponential_fragments_are_handled_on_graphql_system(client: Any, mint: Mint) -> None:
    await insert_rows(client, row(recipient=INSTALLER))
    # Without aliases the expansion merges into one field, which graphql-core validates
    # cheaply; it is refused all the same, by its expanded field count (2**20), before any
    # validation: the count is what bounds the cheaper-looking chains (see below).
    plain = "{ notifications { ...F0 } } " + doubling_fragments(20, "directus_notifications", "id")
    status, body = await graphql(client, mint, plain)
    assert status == 400 and body["errors"][0]["extensions"]["limit"] == "fields", body
    # Small enough once expanded, it runs and answers once.
    small = "{ notifications { ...F0 } } " + doubling_fragments(8, "directus_notifications", "id")
    status, body = await graphql(client, mint, small)
    assert status == 200 and len(body["data"]["notifications"]) == 1, body
    # With an alias in each copy, the expanded alias count (2**20) is refused.
    aliased = "{ notifications { ...F0 } } " + doubling_fragments(
        20, "directus_notifications", "x: id"
    )
    status, body = await graphql(client, mint, aliased)
    assert status == 400 and body["errors"][0]["extensions"]["limit"] == "aliases", body


async def v2_selecting(
    client: Any, fake_monday: Any, mint: Mint, selection: str, fragments: str = ""
) -> Any:
    """POST /v2 one create_notification answering `selection` (with `fragments` after the
    operation), as an installed account's installer with an OAuth token; monday's body."""
    await install(client)
    await connect(client, fake_monday.fake, user=INSTALLER, kind="oauth")
    query = (
        'mutation { create_notification(user_id: 11, target_id: 1, text: "x", '
        f"target_type: Project) {{ {selection} }} }} {fragments}"
    )
    response = await client.post(
        "/v2", json={"query": query}, headers={"Authorization": mint(user=INSTALLER)}
    )
    return await response.json()


async def test_exponential_fragments_are_refused_on_v2(
    monday_client: Any, fake_monday: Any, mint: Mint
) -> None:
    fragments = doubling_fragments(16, "Notification", "x: id")
    body = await v2_selecting(monday_client, fake_monday, mint, "...F0", fragments)
    assert body["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED", body
    assert "aliases" in body["errors"][0]["message"]
    assert fake_monday.fake.requests_to("/v2") == [] and await row_count(monday_client) == 0


# graphql-core's validation compares the fields of a selection set pairwise: before these
# limits, 4,980 `message` fields (under the token limit) cost 0.3 s of the event loop, and
# 500 `id`s on /v2 0.25 s. Refused before validation, they cost a walk of the document.
@pytest.mark.parametrize(
    ("selection", "limit"),
    [
        ("message " * 4980, "repeats"),
        ("message " * 21, "repeats"),
        ("... on directus_notifications { message } " * 400, "selections"),
        ("...F " * 1500, "selections"),
    ],
)
async def test_repeated_selections_are_refused_before_validation(
    client: Any, mint: Mint, selection: str, limit: str
) -> None:
    fragment = "fragment F on directus_notifications { message }" if "...F" in selection else ""
    status, body = await graphql(
        client, mint, f"{{ notifications(limit: 1) {{ {selection} }} }} {fragment}"
    )
    assert status == 400, body
    [error] = body["errors"]
    assert (error["extensions"]["code"], error["extensions"]["limit"]) == (
        "GRAPHQL_VALIDATION",
        limit,
    )


async def test_a_field_asked_for_up_to_twenty_times_runs(client: Any, mint: Mint) -> None:
    status, body = await graphql(client, mint, "{ notifications(limit: 1) { " + "id " * 20 + "} }")
    assert status == 200 and "errors" not in body, body


async def test_repeated_fields_are_refused_on_v2(
    monday_client: Any, fake_monday: Any, mint: Mint
) -> None:
    body = await v2_selecting(monday_client, fake_monday, mint, "id " * 500)
    assert body["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED", body
    assert body["errors"][0]["extensions"]["error_data"] == {"max_repeats": 20}
    assert fake_monday.fake.requests_to("/v2") == [] and await row_count(monday_client) == 0


def fragment_chain(levels: int, per_level: int) -> str:
    """Fragments on Query, each spreading every one before it: few selections as written,
    thousands once expanded (4,826 fields for 7 levels of 19 cost 0.16 s to validate)."""
    fragments = []
    for level in range(levels):
        spreads = " ".join(f"...Q{before}" for before in range(level))
        fields = " ".join(["notifications(limit: 0) { message }"] * per_level)
        fragments.append(f"fragment Q{level} on Query {{ {spreads} {fields} }}")
    return f"{{ ...Q{levels - 1} }} " + " ".join(fragments)


async def test_fields_brought_in_by_fragments_are_counted_expanded(client: Any, mint: Mint) -> None:
    status, body = await graphql(client, mint, fragment_chain(7, 19))
    assert status == 400, body
    [error] = body["errors"]
    assert (error["extensions"]["limit"], error["extensions"]["maximum"]) == ("fields", 500)
    # The introspection query (229 fields expanded) is well inside.
    from graphql import get_introspection_query

    status, body = await graphql(client, mint, get_introspection_query(descriptions=True))
    assert status == 200 and "errors" not in body, body
