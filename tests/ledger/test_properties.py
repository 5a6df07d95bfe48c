"""Property-based: random filter trees and query strings, valid or not, never give a 500 and
never return (or change, or delete) a row outside the caller's account or, for non-admins,
outside the rows they received or sent."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from multidict import MultiDict

from server.notifications.fields import FIELD_KINDS
from server.notifications.filters import OPERATORS
from tests.conftest import ACCOUNT, Mint
from tests.ledger.conftest import ADMIN, ALICE, BOB, CAROL, OTHER_ACCOUNT, Client, bearer, fetch_row

PROPERTY_SETTINGS = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

FIELDS = [*FIELD_KINDS, "nope", "lease_owner", "monday_id", "recipient.email", "year(timestamp)"]
OPS = [*sorted(OPERATORS), "_foo", "_regex", "_some", "eq"]
INTERESTING = [
    "$CURRENT_USER", "$NOW", "$NOW(-1 day)", "$NOW(+3 months)", "$NOW(1 x)", "$CURRENT_ROLE",
    "2024-01-01", "2024-03-01T12:00:00Z", "2024-03-01T12:00:00+05:30", "inbox", "archived",
    ALICE, BOB, ACCOUNT, OTHER_ACCOUNT, "", "%", "_", "\\", "\x00", "true", "1,2", "500,503",
    "9999-12-31T23:59:59-05:00", "0001-01-01T00:00:00+01:00",
]  # fmt: skip

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(INTERESTING),
)
operands = st.one_of(
    scalars,
    st.lists(scalars, max_size=4),
    st.dictionaries(st.text(max_size=3), scalars, max_size=2),
)
rules = st.one_of(operands, st.dictionaries(st.sampled_from(OPS), operands, min_size=1, max_size=3))
leaves = st.dictionaries(st.sampled_from(FIELDS), rules, max_size=3)
trees = st.recursive(
    leaves,
    lambda children: st.one_of(
        st.builds(lambda xs: {"_and": xs}, st.lists(children, max_size=3)),
        st.builds(lambda xs: {"_or": xs}, st.lists(children, max_size=3)),
        st.builds(
            lambda a, b: {**a, **b},
            leaves,
            st.fixed_dictionaries({"_or": st.lists(children, max_size=2)}),
        ),
    ),
    max_leaves=8,
)

# Mostly well-formed trees, so the scope is exercised on queries that do return rows.
_KIND_VALUES = {
    "str": st.one_of(
        st.sampled_from(
            ["inbox", "archived", ALICE, BOB, CAROL, "500", "502", "Welcome", "o", "P"]
        ),
        st.sampled_from(["$CURRENT_USER", ACCOUNT, OTHER_ACCOUNT]),
        st.text(min_size=1, max_size=4).filter(lambda t: "\x00" not in t),
    ),
    "int": st.integers(min_value=-3, max_value=10),
    "bool": st.sampled_from([True, False, "true", "false"]),  # contract §12: `urgent`
    "datetime": st.sampled_from(
        ["2024-01-01", "2024-02-01T09:30:00Z", "2024-03-02T08:00:00+01:00", "$NOW", "$NOW(-1 year)"]
    ),
}
_KIND_OPS = {
    "str": ["_eq", "_neq", "_lt", "_gte", "_contains", "_icontains", "_nicontains", "_starts_with",
            "_ends_with", "_niends_with", "_in", "_nin", "_null", "_nempty"],
    "int": ["_eq", "_neq", "_lt", "_lte", "_gt", "_gte", "_in", "_nin", "_between", "_nbetween",
            "_null"],
    "datetime": ["_eq", "_lt", "_gt", "_between", "_nbetween", "_in", "_null", "_nnull"],
    "bool": ["_eq", "_neq", "_in", "_nin", "_null", "_nnull"],
}  # fmt: skip


@st.composite
def valid_leaf(draw: st.DrawFn) -> dict[str, Any]:
    name = draw(st.sampled_from([n for n, k in FIELD_KINDS.items() if k != "json"]))
    kind = FIELD_KINDS[name]
    op = draw(st.sampled_from(_KIND_OPS[kind]))
    values = _KIND_VALUES[kind]
    if op in ("_in", "_nin"):
        operand: Any = draw(st.lists(values, min_size=1, max_size=3))
    elif op in ("_between", "_nbetween"):
        operand = draw(st.lists(values, min_size=2, max_size=2))
    elif op in ("_null", "_nnull", "_empty", "_nempty"):
        operand = draw(st.booleans())
    else:
        operand = draw(values)
    return {name: {op: operand}}


valid_trees = st.recursive(
    valid_leaf(),
    lambda children: st.one_of(
        st.builds(lambda xs: {"_and": xs}, st.lists(children, min_size=1, max_size=3)),
        st.builds(lambda xs: {"_or": xs}, st.lists(children, min_size=1, max_size=3)),
    ),
    max_leaves=6,
)
filters = st.one_of(valid_trees, trees, scalars, st.lists(trees, max_size=2))
callers = st.sampled_from(
    [(ACCOUNT, ADMIN, True), (ACCOUNT, ALICE, False), (ACCOUNT, BOB, False),
     (ACCOUNT, CAROL, False), (OTHER_ACCOUNT, ALICE, False), (OTHER_ACCOUNT, ADMIN, True),
     (ACCOUNT, "99", False)]
)  # fmt: skip


def visible(item: dict[str, Any], account: str, user: str, admin: bool) -> bool:
    if item["account_id"] != account:
        return False
    return admin or user in (item["recipient"], item["sender"])


async def _check_list(response: Any, account: str, user: str, admin: bool) -> None:
    assert response.status in (200, 400), (response.status, await response.text())
    body = await response.json()
    if response.status == 400:
        assert body["errors"][0]["extensions"]["code"] == "INVALID_QUERY", body
        event("refused")
        return
    event("rows returned" if body["data"] else "no rows")
    for item in body["data"]:
        assert visible(item, account, user, admin), item


@PROPERTY_SETTINGS
@given(tree=filters, caller=callers, search=st.one_of(st.none(), st.text(max_size=6)))
async def test_random_filters_stay_in_scope(
    client: Client, mint: Mint, ids: dict[str, int], tree: Any, caller: Any, search: str | None
) -> None:
    account, user, admin = caller
    token = mint(account=account, user=user, admin=admin)
    params = {"filter": json.dumps(tree), "limit": "-1", "fields": "id,account_id,recipient,sender"}
    if search is not None:
        params["search"] = search
    await _check_list(
        await client.get("/notifications", params=params, headers=bearer(token)),
        account,
        user,
        admin,
    )
    body = {
        "query": {
            "filter": tree,
            "limit": -1,
            "fields": ["id", "account_id", "recipient", "sender"],
        }
    }
    response = await client.request("SEARCH", "/notifications", json=body, headers=bearer(token))
    await _check_list(response, account, user, admin)
    # The aggregate path shares the scope: never more than the caller can see.
    response = await client.get(
        "/notifications",
        params={"filter": json.dumps(tree), "aggregate[count]": "*", "meta": "total_count"},
        headers=bearer(token),
    )
    assert response.status in (200, 400)
    if response.status == 200:
        answer = await response.json()
        assert answer["data"][0]["count"] <= answer["meta"]["total_count"]


query_keys = st.one_of(
    st.sampled_from(
        [
            "filter",
            "fields",
            "sort",
            "limit",
            "offset",
            "page",
            "meta",
            "search",
            "aggregate",
            "groupBy",
        ]
    ),
    st.builds(
        lambda a, b: f"filter[{a}][{b}]",
        st.sampled_from([*FIELDS, "_and", "_or", "0"]),
        st.sampled_from([*OPS, "0", ""]),
    ),
    st.builds(
        lambda a: f"aggregate[{a}]",
        st.sampled_from(["count", "min", "max", "countDistinct", "sum", ""]),
    ),
    st.text(min_size=1, max_size=8),
)
query_values = st.one_of(
    st.text(max_size=10),
    st.sampled_from([*INTERESTING, "*", "-1", "id,-timestamp", "status", "{}"]),
)


@PROPERTY_SETTINGS
@given(pairs=st.lists(st.tuples(query_keys, query_values), max_size=5), caller=callers)
async def test_random_query_strings_never_500(
    client: Client, mint: Mint, ids: dict[str, int], pairs: list[tuple[str, str]], caller: Any
) -> None:
    account, user, admin = caller
    params: MultiDict[str] = MultiDict(pairs)
    response = await client.get(
        "/notifications",
        params=params,
        headers=bearer(mint(account=account, user=user, admin=admin)),
    )
    assert response.status in (200, 400), (pairs, await response.text())
    body = await response.json()
    if response.status == 400:
        assert body["errors"][0]["extensions"]["code"] == "INVALID_QUERY"
    else:
        for item in body["data"]:
            if "account_id" in item and "recipient" in item and "sender" in item:
                assert visible(item, account, user, admin)


@PROPERTY_SETTINGS
@given(tree=st.one_of(valid_trees, trees), status=st.sampled_from(["archived", "inbox"]))
async def test_random_patch_by_query_never_touches_hidden_rows(
    client: Client, mint: Mint, ids: dict[str, int], tree: Any, status: str
) -> None:
    response = await client.patch(
        "/notifications",
        json={"query": {"filter": tree}, "data": {"status": status}},
        headers=bearer(mint(user=BOB)),
    )
    assert response.status in (200, 400), await response.text()
    if response.status == 200:
        for item in (await response.json())["data"]:
            assert visible(item, ACCOUNT, BOB, False)
    # Rows Bob neither received nor sent, and the other account's, are never changed.
    for name in ("welcome", "foreign"):
        found = await fetch_row(client, ids[name])
        assert found is not None and found["status"] == "inbox", name


@PROPERTY_SETTINGS
@given(tree=st.one_of(valid_trees, trees))
async def test_random_delete_by_query_only_deletes_own_sent_rows(
    client: Client, mint: Mint, ids: dict[str, int], tree: Any
) -> None:
    response = await client.delete(
        "/notifications", json={"query": {"filter": tree}}, headers=bearer(mint(user=BOB))
    )
    assert response.status in (204, 400, 403), await response.text()
    # Bob sent only reply and carol: everything else is still there.
    for name in ("welcome", "failed", "ping", "foreign"):
        assert await fetch_row(client, ids[name]) is not None, name


@PROPERTY_SETTINGS
@given(tree=st.one_of(valid_trees, trees), caller=callers)
async def test_random_graphql_filters_stay_in_scope(
    client: Client, mint: Mint, ids: dict[str, int], tree: Any, caller: Any
) -> None:
    account, user, admin = caller
    response = await client.post(
        "/graphql/system",
        json={
            "query": "query ($f: directus_notifications_filter) { notifications(filter: $f,"
            " limit: -1) { id account_id recipient sender } }",
            "variables": {"f": tree},
        },
        headers=bearer(mint(account=account, user=user, admin=admin)),
    )
    assert response.status in (200, 400), await response.text()
    body = await response.json()
    for error in body.get("errors", []):
        assert error["extensions"]["code"] in ("INVALID_QUERY", "GRAPHQL_VALIDATION"), error
    if body.get("data"):
        for item in body["data"]["notifications"]:
            assert visible(item, account, user, admin), item
