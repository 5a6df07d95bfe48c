"""A non-admin's list read (notifications/reads.py): the same rows, order and counts as the
single `recipient = me OR sender = me` statement, and on SQLite a plan with no temporary sort."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import pytest
from sqlalchemy import and_, func, insert, or_, select
from sqlalchemy.ext.asyncio import AsyncEngine

from server.notifications import reads
from server.notifications.filters import Context
from server.notifications.query import Query, order_by, parse_query, parse_url_query
from server.notifications.serialize import API_FIELDS
from server.storage.db import create_engine
from server.storage.tables import notifications
from server.tokens import Session
from tests.conftest import ACCOUNT, Mint
from tests.ledger.conftest import Client, bearer, insert_rows
from tests.ledger.conftest import row as ledger_row

ME = "12"
USERS = [ME, "13", "14", "15"]

# Page reads as the views and Directus clients send them.
QUERIES: list[dict[str, str]] = [
    # The bell: my unread, newest first, with its count (bench/ledger.py measures this one).
    {
        "filter[recipient][_eq]": "$CURRENT_USER",
        "filter[status][_eq]": "inbox",
        "sort": "-timestamp",
        "limit": "5",
        "page": "2",
    },
    {"sort": "-timestamp", "limit": "7"},  # the widget: everything I received or sent
    {"sort": "timestamp", "limit": "7", "offset": "3"},
    {"limit": "10", "page": "2"},  # Directus' default sort: id
    {"sort": "-id", "limit": "9"},
    {"filter[status][_eq]": "inbox", "sort": "-timestamp", "limit": "6"},
    {"filter[sender][_eq]": "$CURRENT_USER", "limit": "50"},
    {"search": "build", "sort": "-timestamp", "limit": "-1"},
]


def session(user: str = ME, *, admin: bool = False) -> Session:
    return Session(
        account_id=ACCOUNT,
        user_id=user,
        client_id=None,
        app_id=None,
        is_admin=admin,
        is_view_only=False,
        is_guest=False,
        expires_at=2_000_000_000,
        secret_index=0,
    )


def parsed(params: dict[str, str], user: str = ME) -> Query:
    ctx = Context(user_id=user, now=datetime.now(UTC))
    return parse_query(parse_url_query(params.items()), ctx)


def rows(count: int) -> list[dict[str, Any]]:
    """Deterministic rows over two accounts, with equal timestamps (ties) and self-sends."""
    rng = random.Random(7)
    start = datetime(2024, 1, 1, tzinfo=UTC)
    out = []
    for i in range(count):
        out.append(
            {
                # Minutes, not seconds: many rows share a timestamp, so the tie-breaker counts.
                "timestamp": start + timedelta(minutes=rng.randint(0, count // 4)),
                "status": rng.choice(["inbox", "archived"]),
                "recipient": rng.choice(USERS),
                "sender": rng.choice(USERS),
                "subject": f"Build {i % 5}",
                "message": rng.choice(["build finished", "deploy done", "hello"]),
                "collection": "Project",
                "item": str(500 + i % 9),
                "account_id": ACCOUNT if rng.random() < 0.8 else "2002",
                "delivery_status": "sent",
                "attempts": 1,
            }
        )
    return out


async def seeded(url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(url)
    async with engine.begin() as conn:
        await conn.execute(insert(notifications), rows(1200))
        if conn.dialect.name == "sqlite":
            await conn.exec_driver_sql("ANALYZE")
        else:
            await conn.exec_driver_sql("ANALYZE notifications")
    yield engine
    await engine.dispose()


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    async for engine in seeded(database_url):
        yield engine


def single_or_page(who: Session, query: Query) -> Any:
    """The read as one statement with the OR, as it was written before the two arms."""
    scope = and_(
        notifications.c.account_id == who.account_id,
        or_(notifications.c.recipient == who.user_id, notifications.c.sender == who.user_id),
    )
    limit, offset = query.read_window()
    return (
        select(*[notifications.c[name] for name in API_FIELDS])
        .where(scope, *query.conditions())
        .order_by(*order_by(query))
        .limit(limit)
        .offset(offset)
    )


def single_or_count(who: Session, query: Query) -> Any:
    scope = and_(
        notifications.c.account_id == who.account_id,
        or_(notifications.c.recipient == who.user_id, notifications.c.sender == who.user_id),
    )
    return select(func.count()).select_from(notifications).where(scope, *query.conditions())


@pytest.mark.parametrize(
    "params", QUERIES, ids=lambda p: "&".join(f"{k}={v}" for k, v in p.items())
)
async def test_two_arms_read_what_the_or_reads(engine: AsyncEngine, params: dict[str, str]) -> None:
    query = parsed(params)
    async with engine.connect() as conn:
        got = (
            (await conn.execute(reads.page_statement(session(), query, conn.dialect.name)))
            .mappings()
            .all()
        )
        want = (await conn.execute(single_or_page(session(), query))).mappings().all()
        count = (await conn.execute(reads.count_statement(session(), query))).scalar_one()
        want_count = (await conn.execute(single_or_count(session(), query))).scalar_one()
    assert want, "the data set must give this query some rows"
    assert [dict(r) for r in got] == [dict(r) for r in want]
    assert count == want_count


async def test_counts_without_a_filter_and_for_admins(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        mine = (await conn.execute(reads.count_statement(session(), None))).scalar_one()
        visible = (
            await conn.execute(
                select(func.count())
                .select_from(notifications)
                .where(
                    notifications.c.account_id == ACCOUNT,
                    or_(notifications.c.recipient == ME, notifications.c.sender == ME),
                )
            )
        ).scalar_one()
        admin = (await conn.execute(reads.count_statement(session(admin=True), None))).scalar_one()
        account = (
            await conn.execute(
                select(func.count())
                .select_from(notifications)
                .where(notifications.c.account_id == ACCOUNT)
            )
        ).scalar_one()
    assert 0 < mine == visible < admin == account


async def test_ties_follow_the_direction_of_the_last_sort_field(engine: AsyncEngine) -> None:
    query = parsed({"sort": "-timestamp", "limit": "-1"})
    async with engine.connect() as conn:
        data = (
            (await conn.execute(reads.page_statement(session(), query, conn.dialect.name)))
            .mappings()
            .all()
        )
    keys = [(r["timestamp"], r["id"]) for r in data]
    assert keys == sorted(keys, reverse=True)
    assert len({t for t, _ in keys}) < len(keys), "the data set must contain ties"


@pytest.fixture
async def sqlite_engine(sqlite_database_url: str) -> AsyncIterator[AsyncEngine]:
    """The plan shape is checked on SQLite only: PostgreSQL chooses by its statistics."""
    async for engine in seeded(sqlite_database_url):
        yield engine


# `search` is a substring match: no index helps there, and a sort of the matches is fine.
@pytest.mark.parametrize(
    "params",
    [p for p in QUERIES if "search" not in p],
    ids=lambda p: "&".join(f"{k}={v}" for k, v in p.items()),
)
async def test_sqlite_plan_needs_no_temporary_sort(
    sqlite_engine: AsyncEngine, params: dict[str, str]
) -> None:
    engine = sqlite_engine
    query = parsed(params)
    async with engine.connect() as conn:
        plans = []
        for stmt in (
            reads.page_statement(session(), query, conn.dialect.name),
            reads.count_statement(session(), query),
        ):
            sql = str(stmt.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True}))
            result = await conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql)
            plans.extend(str(r[-1]) for r in result.all())
    assert not [line for line in plans if "TEMP B-TREE" in line], plans
    assert not [line for line in plans if line.startswith("SCAN notifications")], plans


@pytest.mark.parametrize("now", ["$NOW", "\\u0024NOW"], ids=["plain", "json-escaped"])
async def test_a_repeated_query_with_now_reads_the_time_of_each_request(
    sqlite_client: Client, mint: Mint, now: str
) -> None:
    """The REST route reuses parsed queries; one that depends on `$NOW` must not be reused."""
    path = "/notifications?filter=" + quote(f'{{"timestamp": {{"_lte": "{now}"}}}}')
    headers = bearer(mint(user=ME))
    first = await sqlite_client.get(path, headers=headers)
    assert first.status == 200 and (await first.json())["data"] == []
    [row_id] = await insert_rows(
        sqlite_client, ledger_row(recipient=ME, timestamp=datetime.now(UTC))
    )
    second = await sqlite_client.get(path, headers=headers)
    assert [item["id"] for item in (await second.json())["data"]] == [row_id]


# An admin's reads whose filter keeps one user's received or sent rows (the widget's latest
# list, notifications/filter_owner.py): read as that user's two arms.
RECEIVED_OR_SENT = {
    "filter[_or][0][recipient][_eq]": "$CURRENT_USER",
    "filter[_or][1][sender][_eq]": "$CURRENT_USER",
}
ADMIN_QUERIES: list[dict[str, str]] = [
    {**RECEIVED_OR_SENT, "sort": "-timestamp", "limit": "5"},  # the widget, as an admin
    {**RECEIVED_OR_SENT, "filter[status][_eq]": "inbox", "sort": "timestamp", "limit": "7"},
    {
        "filter[_and][0][_or][0][sender][_eq]": "13",
        "filter[_and][0][_or][1][recipient]": "13",
        "filter[_and][1][subject][_eq]": "Build 2",
        "sort": "-id",
        "limit": "4",
        "offset": "2",
    },
]


def account_page(who: Session, query: Query) -> Any:
    """An admin's read as one statement: the account, and the filter with its OR."""
    limit, offset = query.read_window()
    return (
        select(*[notifications.c[name] for name in API_FIELDS])
        .where(notifications.c.account_id == who.account_id, *query.conditions())
        .order_by(*order_by(query))
        .limit(limit)
        .offset(offset)
    )


def account_count(who: Session, query: Query) -> Any:
    return (
        select(func.count())
        .select_from(notifications)
        .where(notifications.c.account_id == who.account_id, *query.conditions())
    )


@pytest.mark.parametrize("admin", [True, False], ids=["admin", "member"])
@pytest.mark.parametrize(
    "params", ADMIN_QUERIES, ids=lambda p: "&".join(f"{k}={v}" for k, v in p.items())
)
async def test_a_read_of_one_users_rows_is_that_users_arms(
    engine: AsyncEngine, params: dict[str, str], admin: bool
) -> None:
    """An admin reads the owner's arms; so does the owner (ME); a member reading another
    user's rows keeps their own arms and the whole filter. The same rows and counts as the
    single statement each time."""
    who = session(admin=admin)
    query = parsed(params)
    assert query.owner in USERS
    single_page, single_count = (
        (account_page, account_count) if admin else (single_or_page, single_or_count)
    )
    async with engine.connect() as conn:
        page = reads.page_statement(who, query, conn.dialect.name)
        got = (await conn.execute(page)).mappings().all()
        want = (await conn.execute(single_page(who, query))).mappings().all()
        count = (await conn.execute(reads.count_statement(who, query))).scalar_one()
        want_count = (await conn.execute(single_count(who, query))).scalar_one()
    assert want, "the data set must give this query some rows"
    assert [dict(r) for r in got] == [dict(r) for r in want]
    assert count == want_count
    assert "UNION ALL" in str(page), "read as two arms"
    owners_arms = admin or query.owner == ME
    assert (" OR " not in str(page)) == owners_arms, "the owner's condition taken out"


@pytest.mark.parametrize(
    "params", ADMIN_QUERIES[:1], ids=lambda p: "&".join(f"{k}={v}" for k, v in p.items())
)
async def test_sqlite_plan_of_an_admins_widget_needs_no_temporary_sort(
    sqlite_engine: AsyncEngine, params: dict[str, str]
) -> None:
    query = parsed(params)
    async with sqlite_engine.connect() as conn:
        plans = []
        for stmt in (
            reads.page_statement(session(admin=True), query, conn.dialect.name),
            reads.count_statement(session(admin=True), query),
        ):
            sql = str(stmt.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True}))
            result = await conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql)
            plans.extend(str(r[-1]) for r in result.all())
    assert not [line for line in plans if "TEMP B-TREE" in line], plans
    assert not [line for line in plans if line.startswith("SCAN notifications")], plans
