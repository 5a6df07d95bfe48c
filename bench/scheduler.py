"""Issue 13: the scheduler (contract §12) under a large schedule. With `waiting` rows
`scheduled` for later (send_at spread over the next 30 days), `due` rows fall due at once:
how many due rows per second reach monday (fake monday over HTTP, the server in its own
process), against a baseline of the same due rows with nothing else scheduled. SQLite and
PostgreSQL, same run; the ratio is printed.

Each round inserts `due` rows `scheduled` with `next_attempt_at` one second in the past, in
one transaction, straight into the database (as a send with `send_at` would have written
them); the clock starts at the commit and stops at monday's answer for the last of them.
The waiting rows are bulk-inserted before the server starts, not sent over HTTP.

Then the release/claim statements are EXPLAINed on the loaded database (with one more set of
due rows in place, so the plans read what a busy release reads), and the index that serves
each is named: a plan that walks the waiting rows would show here.
"""

from __future__ import annotations

import asyncio
import re
import statistics
import time
from datetime import timedelta
from typing import Any

from sqlalchemy import and_, insert, or_, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.base import Executable
from sqlalchemy.sql.elements import ClauseElement

from bench.common import (
    ACCOUNT,
    INSTALLER,
    MEMBER,
    PG_SKIPPED,
    FakeServer,
    Options,
    app_settings,
    database,
    fake_monday,
    install_account,
    ratio,
    say,
    served,
    write_result,
)
from server.clock import utcnow
from server.notifications.model import CLAIMABLE, DeliveryStatus
from server.storage.db import create_engine
from server.storage.notifications.fairness import fair_candidates
from server.storage.tables import notifications

NAME = "scheduler"
t = notifications.c
SCHEDULED = DeliveryStatus.SCHEDULED.value
CHUNK = 5000
SPREAD = timedelta(days=30)
WARMUP = 50


def sizes(opts: Options) -> dict[str, Any]:
    if opts.quick:
        return {"waiting": 2_000, "due": 200, "rounds": 1, "cap_s": 30.0}
    return {"waiting": 100_000, "due": 2_000, "rounds": 5, "cap_s": 120.0}


def _row(i: int, next_attempt_at: Any, now: Any, label: str) -> dict[str, Any]:
    return {
        "timestamp": now,
        "recipient": MEMBER,
        "sender": INSTALLER,
        "message": f"{label} {i}",
        "collection": "Project",
        "item": str(5_550_000 + i % 1000),
        "account_id": ACCOUNT,
        "sent_as": "app",
        "transport": "server",
        "credential_owner": INSTALLER,
        "delivery_status": SCHEDULED,
        "next_attempt_at": next_attempt_at,
        "send_at": next_attempt_at,
    }


async def seed_waiting(engine: AsyncEngine, count: int) -> float:
    """`count` rows scheduled over the next 30 days (from an hour ahead); seconds taken."""
    started = time.perf_counter()
    now = utcnow()
    step = SPREAD / max(count, 1)
    for first in range(0, count, CHUNK):
        rows = [
            _row(i, now + timedelta(hours=1) + step * i, now, "later")
            for i in range(first, min(first + CHUNK, count))
        ]
        async with engine.begin() as conn:
            await conn.execute(insert(notifications), rows)
    async with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            # What autovacuum does after a bulk load; the plans below assume current statistics.
            await conn.execute(text("ANALYZE notifications"))
    return time.perf_counter() - started


async def insert_due(engine: AsyncEngine, count: int, label: str) -> None:
    now = utcnow()
    rows = [_row(i, now - timedelta(seconds=1), now, label) for i in range(count)]
    async with engine.begin() as conn:
        await conn.execute(insert(notifications), rows)


async def one_round(engine: AsyncEngine, fake: FakeServer, due: int, cap: float, label: str) -> Any:
    """Insert `due` due rows; seconds until monday answered for the last of them (or None)."""
    before = len(fake.fake.notifications)
    answers_before = len(fake.answers)
    await insert_due(engine, due, label)
    started = time.monotonic()
    while len(fake.fake.notifications) - before < due:
        if time.monotonic() - started > cap:
            return None, len(fake.fake.notifications) - before
        await asyncio.sleep(0.02)
    last = fake.answers[-1][0] if len(fake.answers) > answers_before else time.monotonic()
    return max(last - started, 1e-6), due


def release_statements() -> dict[str, Any]:
    """The scheduler's and the outbox's due-row reads, as `SqlSchedule.release_due` and
    `SqlOutbox.claim` build them (the same expressions, so a change there shows here)."""
    now = utcnow()
    scheduled_due = and_(t.delivery_status == SCHEDULED, t.next_attempt_at <= now)
    claim_due = and_(
        t.delivery_status.in_(sorted(s.value for s in CLAIMABLE)),
        or_(t.next_attempt_at.is_(None), t.next_attempt_at <= now),
        or_(t.lease_expires_at.is_(None), t.lease_expires_at < now),
    )
    release = select(t.id).where(scheduled_due).order_by(t.next_attempt_at, t.id).limit(1000)
    return {
        "release_probe": select(t.id).where(scheduled_due).limit(1),
        "release": release,
        "release_pg_locking": release.with_for_update(skip_locked=True),
        "claim": fair_candidates(claim_due, 100),
    }


class Explain(Executable, ClauseElement):
    """`EXPLAIN <statement>` with the statement's own bound parameters and types."""

    inherit_cache = False

    def __init__(self, statement: Any, prefix: str) -> None:
        self.statement = statement
        self.prefix = prefix


@compiles(Explain)
def _compile_explain(element: Explain, compiler: Any, **kw: Any) -> str:
    return f"{element.prefix} {compiler.process(element.statement, **kw)}"


async def explain(conn: AsyncConnection, statement: Any) -> list[str]:
    """The plan as text lines: SQLite's EXPLAIN QUERY PLAN; PostgreSQL's EXPLAIN ANALYZE
    (run, so it shows the rows and pages actually read; the caller rolls back)."""
    if conn.dialect.name == "postgresql":
        result = await conn.execute(Explain(statement, "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF)"))
        return [str(row[0]) for row in result.all()]
    result = await conn.execute(Explain(statement, "EXPLAIN QUERY PLAN"))
    depth: dict[int, int] = {0: -1}
    lines = []
    for node, parent, _unused, detail in result.all():
        depth[node] = depth.get(parent, -1) + 1
        lines.append(f"{'  ' * depth[node]}{detail}")
    return lines


INDEX = re.compile(r"\b(ix_\w+|pk_\w+|notifications_pkey)\b")


async def plans(engine: AsyncEngine, due: int) -> dict[str, Any]:
    """EXPLAIN of each statement with `due` due rows next to the waiting ones (inserted in a
    transaction that is rolled back), and the indexes each plan names."""
    found: dict[str, Any] = {}
    async with engine.connect() as conn:
        transaction = await conn.begin()
        now = utcnow()
        rows = [_row(i, now - timedelta(seconds=1), now, "plan") for i in range(due)]
        await conn.execute(insert(notifications), rows)
        for name, statement in release_statements().items():
            if name == "release_pg_locking" and conn.dialect.name != "postgresql":
                continue
            lines = await explain(conn, statement)
            found[name] = {"plan": lines, "indexes": sorted(set(INDEX.findall("\n".join(lines))))}
        await transaction.rollback()
    return found


async def engine_run(kind: str, opts: Options, fake: FakeServer, waiting: int) -> dict[str, Any]:
    p = sizes(opts)
    label = f"scheduler-{kind}-{waiting}"
    async with database(kind, opts, label.replace("-", "_")) as url:
        await install_account(url)
        engine = create_engine(url)
        try:
            seeded = await seed_waiting(engine, waiting) if waiting else 0.0
            # A short poll so a round does not start with up to a second of idle wait.
            settings = app_settings(url, fake.api_url, delivery_poll_seconds=0.05)
            rounds: list[dict[str, Any]] = []
            async with served("app", settings, label) as _base:
                # Not measured: the server's first pass (connections, first statements).
                await one_round(engine, fake, WARMUP, p["cap_s"], f"{label} warm-up")
                for r in range(p["rounds"]):
                    # Messages unique to the run: monday (and the fake) would replay a
                    # request whose Idempotency-Key (rows and texts) it has seen before.
                    seconds, delivered = await one_round(
                        engine, fake, p["due"], p["cap_s"], f"{label} due {r}"
                    )
                    rate = delivered / seconds if seconds else None
                    rounds.append(
                        {
                            "seconds": None if seconds is None else round(seconds, 3),
                            "delivered": delivered,
                            "rows_per_s": None if rate is None else round(rate, 1),
                        }
                    )
                    if seconds is None:
                        say(f"  ! {kind}: only {delivered}/{p['due']} after {p['cap_s']:g} s")
            async with engine.connect() as conn:
                still = await conn.scalar(
                    select(text("count(*)"))
                    .select_from(notifications)
                    .where(t.delivery_status == SCHEDULED)
                )
            # The baseline's plans too: the same plan reading the same pages means the
            # waiting rows cost the release nothing.
            explained = await plans(engine, p["due"])
        finally:
            await engine.dispose()
    rates = [r["rows_per_s"] for r in rounds if r["rows_per_s"] is not None]
    return {
        "waiting": waiting,
        "seed_s": round(seeded, 1),
        "rounds": rounds,
        "median_rows_per_s": round(statistics.median(rates), 1) if rates else None,
        "scheduled_left": int(still or 0),
        "plans": explained,
    }


def report(kind: str, baseline: dict[str, Any], loaded: dict[str, Any]) -> None:
    share = ratio(loaded["median_rows_per_s"], baseline["median_rows_per_s"])
    say(
        f"  {kind}: {baseline['median_rows_per_s']} due rows/s with nothing waiting, "
        f"{loaded['median_rows_per_s']} with {loaded['waiting']:,} waiting "
        f"(ratio {share}; {loaded['waiting']:,} seeded in {loaded['seed_s']} s; "
        f"{loaded['scheduled_left']:,} still scheduled after)"
    )
    for name, found in loaded["plans"].items():
        say(f"    {name}: index {', '.join(found['indexes']) or 'NONE'}")
        for line in found["plan"]:
            say(f"      {line}")


async def run(opts: Options) -> dict[str, Any]:
    p = sizes(opts)
    say(
        f"scheduler: {p['due']} due rows released to monday, with {p['waiting']:,} rows "
        f"scheduled for later vs none; {p['rounds']} round(s), median"
    )
    results: dict[str, Any] = {}
    async with fake_monday() as fake:
        for kind in ("sqlite", "postgresql"):
            try:
                baseline = await engine_run(kind, opts, fake, 0)
                loaded = await engine_run(kind, opts, fake, p["waiting"])
            except LookupError:
                say(PG_SKIPPED)
                continue
            report(kind, baseline, loaded)
            results[kind] = {
                "baseline": baseline,
                "loaded": loaded,
                "ratio": ratio(loaded["median_rows_per_s"], baseline["median_rows_per_s"]),
            }
    params = {**p, "warmup_rows": WARMUP, "delivery_poll_seconds": 0.05, "delivery_batch_size": 25}
    write_result(NAME, opts, params, results)
    return results
