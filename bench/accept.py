"""Issue 6: accept throughput and p99 of `POST /notifications` on SQLite and on PostgreSQL,
against the bare baseline of issue 3 (token check + forward, no ledger), same run.

"Accepted" is the whole answered request: the server writes the row (the durable outbox)
before monday is called, and answers with the delivery status reached (normally `sent`).
Also measured: arrays of 25 notifications per request (notifications accepted per second).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from bench import charts
from bench.common import (
    PG_SKIPPED,
    Load,
    Options,
    fake_monday,
    pg_admin_url,
    ratio,
    say,
    write_result,
)
from bench.send import CONCURRENCY, describe, measure_app, measure_bare, sizes

NAME = "accept"
ARRAY = 25
CAP = 12.0  # seconds per target (arrays: ARRAY_CAP), so the whole benchmark stays near a minute
ARRAY_CAP = 6.0


async def run(opts: Options) -> dict[str, Any]:
    opts = replace(opts, in_flight=None)  # `--in-flight` is `send`'s; accept keeps its 16
    count, cap = sizes(opts)
    cap = min(cap, CAP)
    say(
        f"accept: POST /notifications, {count} requests (cap {cap:g} s), concurrency "
        f"{CONCURRENCY}; then arrays of {ARRAY}"
    )
    pg = pg_admin_url(opts) is not None
    loads: dict[str, Load | str] = {}
    async with fake_monday() as fake:
        loads["bare"] = await measure_bare(fake, opts, "accept-bare", cap=cap)
        describe("bare (token + forward)", loads["bare"])
        loads["sqlite"] = await measure_app(fake, opts, "sqlite", "accept-sqlite", cap=cap)
        describe("monday-notify SQLite", loads["sqlite"])
        if pg:
            loads["postgres"] = await measure_app(
                fake, opts, "postgres", "accept-postgres", cap=cap
            )
            describe("monday-notify PostgreSQL", loads["postgres"])
        else:
            say(PG_SKIPPED)
            loads["postgres"] = "skipped: PostgreSQL unavailable"
        arrays: dict[str, Load | str] = {}
        for engine in ("sqlite", "postgres"):
            if opts.quick and engine == "postgres":
                arrays[engine] = "skipped in --quick"
                continue
            if engine == "postgres" and not pg:
                arrays[engine] = "skipped: PostgreSQL unavailable"
                continue
            load = await measure_app(
                fake, opts, engine, f"accept-{engine}-x{ARRAY}", batch=ARRAY, cap=ARRAY_CAP
            )
            arrays[engine] = load
            describe(f"{engine}, arrays of {ARRAY}", load)
            say(f"  {'':<28} = {load.rate * ARRAY:>8.1f} notifications/s")
    bare = loads["bare"]
    assert isinstance(bare, Load)
    bare_p99 = bare.summary()["p99_ms"]
    targets: dict[str, Any] = {}
    for key, load in loads.items():
        if isinstance(load, str):
            targets[key] = load
            continue
        s = load.summary()
        if key != "bare":
            s["throughput_over_bare"] = ratio(load.rate, bare.rate)
            s["p99_over_bare"] = ratio(s["p99_ms"], bare_p99)
        targets[key] = s
    array_results: dict[str, Any] = {}
    for key, load in arrays.items():
        if isinstance(load, str):
            array_results[key] = load
        else:
            array_results[key] = {
                **load.summary(),
                "notifications_per_s": round(load.rate * ARRAY, 1),
            }
    for key in ("sqlite", "postgres"):
        t = targets.get(key)
        if isinstance(t, dict):
            say(
                f"  {key}: throughput x{t['throughput_over_bare']} of bare, "
                f"p99 x{t['p99_over_bare']} of bare"
            )
    results = {"targets": targets, f"arrays_of_{ARRAY}": array_results}
    params = {
        "requests": count,
        "time_cap_s": cap,
        "array_time_cap_s": ARRAY_CAP,
        "concurrency": CONCURRENCY,
        "array": ARRAY,
    }
    write_result(NAME, opts, params, results)
    if opts.charts:
        charts.accept_chart(opts, results)
    return results
