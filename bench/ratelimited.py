"""Issue 6: a rate-limited monday. The fake enforces a per-account budget of `budget` requests
per `window` seconds (monday's per-minute limit, shortened so the run is short) and answers
429 past it, with `RateLimit`/`RateLimit-Policy` headers on every answer.

More notifications are offered than the budget allows (batching off, so each notification
costs one request and the budget is the bottleneck). Measured: the share of the allowed rate
achieved (goal >= 90%) and the number of 429s monday had to send (goal 0).

Share of the allowed rate: a sender that uses the whole budget and never waits needlessly can
deliver its S-th notification at the earliest `floor((S - 1) / budget) * window` seconds after
its first request (each window starts with the first request after the previous one ended);
the share is that ideal time divided by the time the server actually took.
"""

from __future__ import annotations

import time
from typing import Any

from bench import charts
from bench.common import (
    MEMBER,
    REPO,
    Options,
    RequestSpec,
    app_settings,
    check_load,
    database,
    fake_monday,
    install_account,
    run_load,
    say,
    served,
    session_token,
    write_result,
)
from bench.fanout import TERMINAL, wait_until_terminal
from server.storage.db import create_engine

NAME = "ratelimited"
CONCURRENCY = 8


def sizes(opts: Options) -> dict[str, Any]:
    if opts.quick:
        return {"budget": 10, "window_s": 1.0, "notifications": 30, "cap_s": 10.0}
    return {"budget": 50, "window_s": 5.0, "notifications": 250, "cap_s": 50.0}


def governor_state() -> str:
    return "present" if (REPO / "server" / "delivery" / "governor.py").exists() else "absent"


async def run(opts: Options) -> dict[str, Any]:
    p = sizes(opts)
    budget, window, count, cap = p["budget"], p["window_s"], p["notifications"], p["cap_s"]
    governor = governor_state()
    say(
        f"ratelimited: monday allows {budget} requests per {window:g} s per account; "
        f"{count} notifications offered as single POSTs (concurrency {CONCURRENCY}), "
        f"delivery_batch_size=1; server/delivery/governor.py {governor}"
    )
    async with fake_monday() as fake:
        fake.fake.minute_budget = budget
        fake.fake.minute_window_seconds = window
        async with database("sqlite", opts, "ratelimited") as url:
            await install_account(url)
            settings = app_settings(url, fake.api_url, delivery_batch_size=1)
            async with served("app", settings, "ratelimited") as base:
                engine = create_engine(url)
                headers = {"Authorization": session_token()}

                def make(i: int) -> RequestSpec:
                    body = {
                        "recipient": MEMBER,
                        "message": f"Rate-limited notification {i}",
                        "collection": "Project",
                        "item": "5550001",
                    }
                    return ("POST", "/notifications", headers, body)

                started = time.perf_counter()
                try:
                    load = await run_load(
                        base, make, count=count, concurrency=CONCURRENCY, max_seconds=cap
                    )
                    check_load(load, "POST /notifications")
                    counts = await wait_until_terminal(
                        engine, count, started=started, cap=cap, every=0.2
                    )
                    if sum(counts.get(s, 0) for s in TERMINAL) < count:
                        say(f"  ! stopped waiting after {cap:g} s: {counts}")
                finally:
                    await engine.dispose()
    answers = fake.answers
    t0 = answers[0][0] if answers else 0.0
    ok = [round(t - t0, 3) for t, status in answers if status == 200]
    limited = [round(t - t0, 3) for t, status in answers if status == 429]
    other = {s: n for s, n in fake.statuses().items() if s not in (200, 429)}
    sent = counts.get("sent", 0)
    ideal = ((sent - 1) // budget) * window if sent else 0.0
    actual = ok[-1] if ok else 0.0
    share = min(ideal / actual, 1.0) if actual > 0 else (1.0 if sent and ideal == 0 else 0.0)
    results = {
        "governor": governor,
        "budget": budget,
        "window_s": window,
        "allowed_rate_per_s": round(budget / window, 2),
        "notifications": count,
        "delivery_status": counts,
        "sent": sent,
        "requests_to_monday": len(answers),
        "rate_limited_answers": len(limited),
        "other_answers": {str(k): v for k, v in other.items()},
        "ideal_time_to_last_s": round(ideal, 2),
        "time_to_last_s": round(actual, 2),
        "share_of_allowed_rate": round(share, 3),
        "achieved_rate_per_s": round(sent / actual, 2) if actual > 0 else None,
        "post_latency": load.summary(),
        "goals": {
            "share_at_least_90pct": share >= 0.9,
            "zero_429": not limited,
            "all_sent": sent == count,
        },
        "timeline": {"ok_s": ok, "rate_limited_s": limited},
    }
    say(
        f"  sent {sent}/{count} ({counts}); {len(answers)} requests to monday, "
        f"{len(limited)} answered 429 (goal 0)"
    )
    say(
        f"  last notification after {actual:.1f} s, ideal {ideal:.1f} s: "
        f"{share * 100:.1f}% of the allowed rate (goal >= 90%)"
    )
    params = {
        **p,
        "concurrency": CONCURRENCY,
        "delivery_batch_size": 1,
        "delivery_poll_seconds": 1.0,
    }
    write_result(NAME, opts, params, results)
    if opts.charts:
        charts.ratelimited_chart(opts, results)
    return results
