"""Issue 11: the rate-limited run on PostgreSQL, with one server instance and with two.

The same budget-limited fake monday as `ratelimited` (a per-account budget of `budget`
requests per `window` seconds, 429 past it), but the server runs on PostgreSQL, where the
instances share the governor's view of the account's budget (contract §11). The offered
notifications are split evenly across the instances (single POSTs, batching off, so each
notification costs one request and the budget is the bottleneck). Per run:

- share of the allowed rate (goal >= 80% with two instances), defined as in `ratelimited`:
  S requests can at best have the last one go `floor((S - 1) / budget) * window` after the
  first; the share is that ideal time over the time taken. Both times are the fake monday's
  own records of when each executed request was counted against the budget;
- 429s monday sent (goal at most 1 with two instances, 0 with one);
- duplicates: notifications monday executed more than once (goal 0);
- delivered: notifications in monday's bell, and ledger rows `sent`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from typing import Any

from bench.common import (
    MEMBER,
    PG_SKIPPED,
    FakeServer,
    Load,
    Options,
    RequestSpec,
    app_settings,
    check_load,
    database,
    fake_monday,
    install_account,
    pg_admin_url,
    run_load,
    say,
    served,
    session_token,
    write_result,
)
from bench.fanout import TERMINAL, wait_until_terminal
from server.storage.db import create_engine

NAME = "ratelimited_two"
CONCURRENCY = 8  # POSTs in flight in all, split across the instances


def sizes(opts: Options) -> dict[str, Any]:
    if opts.quick:
        return {"budget": 10, "window_s": 1.0, "notifications": 30, "cap_s": 20.0}
    return {"budget": 30, "window_s": 3.0, "notifications": 300, "cap_s": 90.0}


def share_of_allowed_rate(fake: FakeServer, budget: int, window: float) -> dict[str, Any]:
    """The executed `create_notification` requests, timed by the fake's own clock."""
    executed = {n.request_id for n in fake.fake.notifications}
    times = sorted(
        r.charged_at
        for r in fake.fake.requests_to("/v2")
        if r.request_id in executed and r.charged_at is not None
    )
    if not times:
        return {"executed_requests": 0, "share_of_allowed_rate": 0.0}
    spent = times[-1] - times[0]
    ideal = ((len(times) - 1) // budget) * window
    share = min(ideal / spent, 1.0) if spent > 0 else 1.0
    return {
        "executed_requests": len(times),
        "ideal_time_to_last_s": round(ideal, 2),
        "time_to_last_s": round(spent, 2),
        "share_of_allowed_rate": round(share, 3),
    }


async def one_run(opts: Options, instances: int) -> dict[str, Any]:
    p = sizes(opts)
    budget, window, count, cap = p["budget"], p["window_s"], p["notifications"], p["cap_s"]
    label = f"ratelimited-{instances}"
    async with fake_monday() as fake:
        fake.fake.minute_budget = budget
        fake.fake.minute_window_seconds = window
        async with database("postgres", opts, label.replace("-", "_")) as url:
            await install_account(url)
            settings = app_settings(url, fake.api_url, delivery_batch_size=1)
            async with contextlib.AsyncExitStack() as stack:
                bases = [
                    await stack.enter_async_context(served("app", settings, f"{label}-{n}"))
                    for n in range(instances)
                ]
                engine = create_engine(url)
                headers = {"Authorization": session_token()}

                def maker(instance: int) -> Any:
                    def make(i: int) -> RequestSpec:
                        body = {
                            "recipient": MEMBER,
                            "message": f"Rate-limited notification {instance}-{i}",
                            "collection": "Project",
                            "item": "5550001",
                        }
                        return ("POST", "/notifications", headers, body)

                    return make

                started = time.perf_counter()
                try:
                    loads: list[Load] = await asyncio.gather(
                        *(
                            run_load(
                                base,
                                maker(n),
                                count=count // instances,
                                concurrency=CONCURRENCY // instances,
                                max_seconds=cap,
                            )
                            for n, base in enumerate(bases)
                        )
                    )
                    for load in loads:
                        check_load(load, "POST /notifications")
                    offered = (count // instances) * instances
                    counts = await wait_until_terminal(
                        engine, offered, started=started, cap=cap, every=0.2
                    )
                    if sum(counts.get(s, 0) for s in TERMINAL) < offered:
                        say(f"  ! stopped waiting after {cap:g} s: {counts}")
                finally:
                    await engine.dispose()
    texts = Counter(n.text for n in fake.fake.notifications)
    statuses = fake.statuses()
    result = {
        "instances": instances,
        "notifications": offered,
        "delivery_status": counts,
        "sent": counts.get("sent", 0),
        "delivered_to_bell": len(texts),
        "duplicates": sum(n - 1 for n in texts.values() if n > 1),
        "requests_to_monday": fake.v2_requests(),
        "rate_limited_answers": statuses.get(429, 0),
        **share_of_allowed_rate(fake, budget, window),
    }
    say(
        f"  {instances} instance(s): {result['sent']}/{offered} sent, "
        f"{result['delivered_to_bell']} in the bell, {result['duplicates']} duplicates, "
        f"{result['rate_limited_answers']} answered 429; "
        f"{result['share_of_allowed_rate'] * 100:.1f}% of the allowed rate "
        f"({result.get('time_to_last_s')} s for {result['executed_requests']} requests, "
        f"ideal {result.get('ideal_time_to_last_s')} s)"
    )
    return result


async def run(opts: Options) -> dict[str, Any]:
    p = sizes(opts)
    say(
        f"ratelimited_two: PostgreSQL; monday allows {p['budget']} requests per "
        f"{p['window_s']:g} s per account; {p['notifications']} notifications offered as "
        f"single POSTs split across the instances, delivery_batch_size=1"
    )
    if pg_admin_url(opts) is None:
        say(PG_SKIPPED)
        return {"skipped": "PostgreSQL unavailable"}
    runs = {f"{n}_instance{'s' if n > 1 else ''}": await one_run(opts, n) for n in (1, 2)}
    two = runs["2_instances"]
    results = {
        "budget": p["budget"],
        "window_s": p["window_s"],
        "allowed_rate_per_s": round(p["budget"] / p["window_s"], 2),
        "runs": runs,
        "goals": {
            "two_share_at_least_80pct": two["share_of_allowed_rate"] >= 0.8,
            "two_at_most_one_429": two["rate_limited_answers"] <= 1,
            "no_duplicates": all(r["duplicates"] == 0 for r in runs.values()),
            "all_sent": all(r["sent"] == r["notifications"] for r in runs.values()),
        },
    }
    params = {**p, "concurrency": CONCURRENCY, "delivery_batch_size": 1, "engine": "postgres"}
    write_result(NAME, opts, params, results)
    return results
