"""Issue 4's benchmark: a seeded ledger of 100,000 rows, read through `GET /notifications`.

A bell-style read as a non-admin user: their unread (`status = inbox`) notifications, newest
first, 25 a page, with `meta=filter_count`; and the unread count with `aggregate[count]=*`.
The baseline ("SQL") is the very same SQL (built by the ledger's own statement builders) run
directly with SQLAlchemy in this process on the driver the API reads with: on SQLite the stdlib
`sqlite3` driver on the calling thread (the API runs its reads in a read-pool thread on that
driver, storage/readers.py), on PostgreSQL asyncpg. So the ratio is the API's whole overhead
(HTTP, token, query parsing, the thread hop, serialisation). On SQLite the same statements
through aiosqlite (the async driver the API read with before) are timed too, as "aiosqlite".
`GET /healthz` on the same server is timed as the HTTP floor (the middlewares, no database).
EXPLAIN shows which index each engine used, for the bench's reads and an admin's, and the
run says whether any of them needs a temporary sort.
"""

from __future__ import annotations

import random
import re
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import create_engine as create_sync_engine
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from bench import charts
from bench.common import (
    ACCOUNT,
    CLIENT_ID,
    CLIENT_SECRET,
    MEMBER,
    PG_SKIPPED,
    Options,
    RequestSpec,
    app_settings,
    check_load,
    database,
    fmt_ms,
    latency_summary,
    pg_admin_url,
    ratio,
    run_load,
    say,
    served,
    session_token,
    write_result,
)
from server.notifications import ledger, reads
from server.notifications.filters import Context
from server.notifications.query import parse_query, parse_url_query
from server.storage.db import create_engine
from server.storage.tables import notifications
from server.tokens import verify_session

NAME = "ledger"
CHUNK = 5000
PAGES = 10  # calls cycle over pages 1..PAGES


def sizes(opts: Options) -> tuple[int, int]:
    """(rows seeded, calls timed per query)."""
    return (10_000, 20) if opts.quick else (100_000, 200)


# -- seeding -----------------------------------------------------------------------------------
def make_rows(count: int, seed: int = 42) -> list[dict[str, Any]]:
    """A deterministic ledger: account 1001 holds 90% of the rows; user 12 (the reader) receives
    ~5% of those; 70% inbox; timestamps over 180 days; mostly `sent`."""
    rng = random.Random(seed)
    now = datetime.now(UTC)
    others = ["2002", "3003", "4004"]
    users = [str(100 + i) for i in range(200)]
    senders = ["11", *[str(300 + i) for i in range(19)]]
    deliveries = (
        ["sent"] * 90
        + ["failed"] * 4
        + ["retry_scheduled"] * 2
        + ["unknown"] * 2
        + ["awaiting_client"] * 2
    )
    rows = []
    for i in range(count):
        account = ACCOUNT if rng.random() < 0.9 else rng.choice(others)
        recipient = MEMBER if account == ACCOUNT and rng.random() < 0.05 else rng.choice(users)
        delivery = rng.choice(deliveries)
        ts = now - timedelta(seconds=rng.uniform(0, 180 * 86400))
        rows.append(
            {
                "timestamp": ts,
                "status": "inbox" if rng.random() < 0.7 else "archived",
                "recipient": recipient,
                "sender": rng.choice(senders),
                "subject": f"Subject {i % 97}",
                "message": f"Item {i} changed: build #{rng.randint(1, 9999)} finished",
                "collection": "Project" if rng.random() < 0.8 else "Post",
                "item": str(5_000_000 + rng.randint(0, 5000)),
                "account_id": account,
                "sent_as": "app" if rng.random() < 0.8 else "installer",
                "transport": "server",
                "credential_owner": "11",
                "delivery_status": delivery,
                "attempts": 1,
                "sent_at": ts if delivery == "sent" else None,
                # A retry is due tomorrow: a row with no next_attempt_at would be due now, and
                # the server's delivery worker would write to the ledger while it is measured.
                "next_attempt_at": now + timedelta(days=1)
                if delivery == "retry_scheduled"
                else None,
            }
        )
    return rows


async def seed(engine: AsyncEngine, count: int) -> float:
    """Bulk insert with SQLAlchemy Core executemany in chunks; returns seconds taken."""
    rows = make_rows(count)
    started = time.perf_counter()
    for start in range(0, count, CHUNK):
        async with engine.begin() as conn:
            await conn.execute(notifications.insert(), rows[start : start + CHUNK])
    async with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            # Statistics now, and no autovacuum worker competing with the timed reads.
            await conn.exec_driver_sql("ALTER TABLE notifications SET (autovacuum_enabled = false)")
            await conn.exec_driver_sql("ANALYZE notifications")
        else:
            await conn.exec_driver_sql("ANALYZE")
    return time.perf_counter() - started


# -- the queries ---------------------------------------------------------------------------------
FILTER = {"filter[recipient][_eq]": "$CURRENT_USER", "filter[status][_eq]": "inbox"}


def list_params(page: int) -> dict[str, str]:
    return {
        **FILTER,
        "sort": "-timestamp",
        "limit": "25",
        "page": str(page),
        "meta": "filter_count",
    }


def count_params() -> dict[str, str]:
    return {**FILTER, "aggregate[count]": "*"}


def admin_list_params(page: int) -> dict[str, str]:
    """An admin's list of their whole account, newest first (no filter)."""
    return {"sort": "-timestamp", "limit": "25", "page": str(page), "meta": "filter_count"}


# The widget's latest list (server/views/static/js/widget.js), read here by an admin.
WIDGET_PARAMS = {
    "filter[_or][0][recipient][_eq]": "$CURRENT_USER",
    "filter[_or][1][sender][_eq]": "$CURRENT_USER",
    "sort": "-timestamp",
    "limit": "5",
}


def statements(params: dict[str, str], dialect: str, *, admin: bool = False) -> tuple[Any, Any]:
    """The SQL the API runs for `params` as user 12, from the ledger's own builders:
    (rows or aggregate statement, filter_count statement or None)."""
    session = verify_session(
        session_token(MEMBER, admin=admin),
        secrets=[CLIENT_SECRET],
        client_id=CLIENT_ID,
        app_id=None,
    )
    query = parse_query(
        parse_url_query(params.items()), Context(user_id=session.user_id, now=datetime.now(UTC))
    )
    if query.is_aggregate:
        return ledger.aggregate_statement(session, query), None
    return reads.page_statement(session, query, dialect), reads.count_statement(session, query)


def _prepared(dialect: str, aggregate: bool) -> list[tuple[Any, Any]]:
    return [
        statements(count_params() if aggregate else list_params(1 + i % PAGES), dialect)
        for i in range(PAGES)
    ]


def sync_sql_baseline(url: str, calls: int, aggregate: bool) -> list[float]:
    """SQLite: the statements on the stdlib driver, on this thread, as the read pool runs
    them (no thread hop, no HTTP, no serialisation)."""
    engine = create_sync_engine(make_url(url).set(drivername="sqlite+pysqlite"))
    prepared = _prepared("sqlite", aggregate)
    latencies = []
    try:
        with engine.connect() as conn:
            for i in range(calls + 10):
                rows_stmt, count_stmt = prepared[i % PAGES]
                started = time.perf_counter()
                result = conn.execute(rows_stmt).all()
                if count_stmt is not None:
                    conn.execute(count_stmt).scalar_one()
                elapsed = time.perf_counter() - started
                assert result is not None
                if i >= 10:  # the first 10 warm the cache
                    latencies.append(elapsed)
            conn.rollback()
    finally:
        engine.dispose()
    return latencies


async def sql_baseline(engine: AsyncEngine, calls: int, aggregate: bool) -> list[float]:
    prepared = _prepared(engine.dialect.name, aggregate)
    latencies = []
    async with engine.connect() as conn:
        for i in range(calls + 10):
            rows_stmt, count_stmt = prepared[i % PAGES]
            started = time.perf_counter()
            result = (await conn.execute(rows_stmt)).mappings().all()
            if count_stmt is not None:
                (await conn.execute(count_stmt)).scalar_one()
            elapsed = time.perf_counter() - started
            assert result is not None
            if i >= 10:  # the first 10 warm the cache
                latencies.append(elapsed)
    return latencies


async def explain(engine: AsyncEngine) -> dict[str, list[str]]:
    plans: dict[str, list[str]] = {}
    dialect = engine.dialect.name
    rows_stmt, count_stmt = statements(list_params(3), dialect)
    agg_stmt, _ = statements(count_params(), dialect)
    admin_rows, admin_count = statements(list_params(3), dialect, admin=True)
    all_rows, all_count = statements(admin_list_params(3), dialect, admin=True)
    widget_rows, widget_count = statements(WIDGET_PARAMS, dialect, admin=True)
    async with engine.connect() as conn:
        for label, stmt in (
            ("list", rows_stmt),
            ("filter_count", count_stmt),
            ("unread_count", agg_stmt),
            ("admin list (same filter)", admin_rows),
            ("admin filter_count (same filter)", admin_count),
            ("admin list (whole account)", all_rows),
            ("admin filter_count (whole account)", all_count),
            ("admin widget (received or sent)", widget_rows),
            ("admin widget count (received or sent)", widget_count),
        ):
            sql = str(stmt.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True}))
            if conn.dialect.name == "sqlite":
                result = await conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql)
                plans[label] = [str(row[-1]) for row in result.all()]
            else:
                result = await conn.exec_driver_sql("EXPLAIN " + sql)
                plans[label] = [str(row[0]) for row in result.all()]
    return plans


# -- one engine ------------------------------------------------------------------------------------
async def run_engine(kind: str, opts: Options) -> dict[str, Any]:
    rows, calls = sizes(opts)
    async with database(kind, opts, f"ledger-{kind}") as url:
        engine = create_engine(url)
        try:
            seconds = await seed(engine, rows)
            say(f"  [{kind}] seeded {rows:,} rows in {seconds:.1f} s")
            async with engine.connect() as conn:
                reader = verify_session(
                    session_token(MEMBER, admin=False),
                    secrets=[CLIENT_SECRET],
                    client_id=CLIENT_ID,
                    app_id=None,
                )
                visible = (await conn.execute(reads.count_statement(reader, None))).scalar_one()
            plans = await explain(engine)
            if kind == "sqlite":
                sql_list = sync_sql_baseline(url, calls, aggregate=False)
                sql_count = sync_sql_baseline(url, calls, aggregate=True)
                aio_list = await sql_baseline(engine, calls, aggregate=False)
                aio_count = await sql_baseline(engine, calls, aggregate=True)
            else:
                sql_list = await sql_baseline(engine, calls, aggregate=False)
                sql_count = await sql_baseline(engine, calls, aggregate=True)
                aio_list = aio_count = []
        finally:
            await engine.dispose()
        # No worker traffic while reading: the seeded rows are not due (and none is queued).
        settings = app_settings(url, "http://127.0.0.1:9/v2", delivery_poll_seconds=5.0)
        headers = {"Authorization": session_token(MEMBER, admin=False)}
        async with served("app", settings, f"ledger-{kind}") as base:

            def list_call(i: int) -> RequestSpec:
                return (
                    "GET",
                    "/notifications?" + urlencode(list_params(1 + abs(i) % PAGES)),
                    headers,
                    None,
                )

            def count_call(_i: int) -> RequestSpec:
                return ("GET", "/notifications?" + urlencode(count_params()), headers, None)

            api_list = await run_load(
                base, list_call, count=calls, concurrency=1, max_seconds=60, warmup=10
            )
            api_count = await run_load(
                base, count_call, count=calls, concurrency=1, max_seconds=60, warmup=10
            )
            # The floor: a request that reaches the same server and middlewares, no database.
            floor = await run_load(
                base,
                lambda _i: ("GET", "/healthz", {}, None),
                count=calls,
                concurrency=1,
                max_seconds=60,
                warmup=10,
            )
            check_load(api_list, "GET list")
            check_load(api_count, "GET aggregate")
            check_load(floor, "GET /healthz")
            # One answer, to show what was measured.
            import aiohttp

            async with aiohttp.ClientSession() as http:
                async with http.get(
                    base + "/notifications?" + urlencode(list_params(1)), headers=headers
                ) as r:
                    sample = await r.json()
                async with http.get(
                    base + "/notifications?" + urlencode(count_params()), headers=headers
                ) as r:
                    count_sample = await r.json()
    filter_count = (sample.get("meta") or {}).get("filter_count")
    unread = (count_sample.get("data") or [{}])[0].get("count")
    result: dict[str, Any] = {
        "rows": rows,
        "seed_seconds": round(seconds, 2),
        "visible_to_user": visible,
        "filter_count": filter_count,
        "unread_count": unread,
        "page_size": len(sample.get("data") or []),
        "list": {
            "api": {"calls": api_list.ok, **latency_summary(api_list.latencies)},
            "sql": {"calls": len(sql_list), **latency_summary(sql_list)},
        },
        "aggregate": {
            "api": {"calls": api_count.ok, **latency_summary(api_count.latencies)},
            "sql": {"calls": len(sql_count), **latency_summary(sql_count)},
        },
        "http_floor": {"calls": floor.ok, **latency_summary(floor.latencies)},
        "plans": plans,
        "temporary_sorts": temporary_sorts(kind, plans),
    }
    if aio_list:
        result["list"]["sql_aiosqlite"] = {"calls": len(aio_list), **latency_summary(aio_list)}
        result["aggregate"]["sql_aiosqlite"] = {
            "calls": len(aio_count),
            **latency_summary(aio_count),
        }
    for key in ("list", "aggregate"):
        api, sql = result[key]["api"], result[key]["sql"]
        result[key]["p50_api_over_sql"] = ratio(api["p50_ms"], sql["p50_ms"])
        result[key]["p99_api_over_sql"] = ratio(api["p99_ms"], sql["p99_ms"])
    say(
        f"  [{kind}] user 12 sees {visible:,} rows; inbox filter_count={filter_count}, "
        f"unread count={unread}"
    )
    for key, title in (("list", "list page + filter_count"), ("aggregate", "aggregate[count]=*")):
        api, sql = result[key]["api"], result[key]["sql"]
        say(
            f"  [{kind}] {title:<26} API p50 {fmt_ms(api['p50_ms']):>9} "
            f"p99 {fmt_ms(api['p99_ms']):>9}"
            f" | SQL p50 {fmt_ms(sql['p50_ms']):>9} p99 {fmt_ms(sql['p99_ms']):>9}"
            f" | API/SQL p50 x{result[key]['p50_api_over_sql']}"
        )
        if "sql_aiosqlite" in result[key]:
            aio = result[key]["sql_aiosqlite"]
            say(
                f"  [{kind}] {'':<26} (the same SQL through aiosqlite: p50 "
                f"{fmt_ms(aio['p50_ms'])} p99 {fmt_ms(aio['p99_ms'])})"
            )
    floor_ms = result["http_floor"]
    say(
        f"  [{kind}] HTTP floor (GET /healthz, same server, no database): p50 "
        f"{fmt_ms(floor_ms['p50_ms'])} p99 {fmt_ms(floor_ms['p99_ms'])}"
    )
    for label, lines in plans.items():
        say(f"  [{kind}] plan {label}:")
        for line in lines:
            say(f"      {line}")
    sorts = result["temporary_sorts"]
    say(f"  [{kind}] temporary sort in: {', '.join(sorts) if sorts else 'none of these plans'}")
    return result


_PG_SORT = re.compile(r"(Incremental )?Sort +\(")


def temporary_sorts(kind: str, plans: dict[str, list[str]]) -> list[str]:
    """The plans that sort rows in a temporary structure: SQLite's `TEMP B-TREE`, a
    PostgreSQL `Sort` or `Incremental Sort` node (a top-N heapsort included; a Merge Append's
    `Sort Key:` line is the order it keeps, not a sort)."""
    if kind == "sqlite":
        return [label for label, lines in plans.items() if any("TEMP B-TREE" in x for x in lines)]
    return [
        label
        for label, lines in plans.items()
        if any(_PG_SORT.match(x.strip(" ->")) for x in lines)
    ]


async def run(opts: Options) -> dict[str, Any]:
    rows, calls = sizes(opts)
    say(
        f"ledger: {rows:,} rows; GET /notifications as user 12 (non-admin), filter recipient="
        f"$CURRENT_USER & status=inbox, sort=-timestamp, limit=25, pages 1-{PAGES}, "
        f"meta=filter_count; {calls} sequential calls each"
    )
    results: dict[str, Any] = {"sqlite": await run_engine("sqlite", opts)}
    if pg_admin_url(opts) is not None:
        results["postgres"] = await run_engine("postgres", opts)
    else:
        say(PG_SKIPPED)
        results["postgres"] = "skipped: PostgreSQL unavailable"
    params = {
        "rows": rows,
        "calls": calls,
        "pages": PAGES,
        "page_size": 25,
        "concurrency": 1,
        "reader": "user 12, non-admin",
    }
    write_result(NAME, opts, params, results)
    if opts.charts:
        charts.ledger_chart(opts, results)
    return results
