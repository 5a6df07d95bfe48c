"""Issue 6: fan-out. One notification to each of 1,000 recipients (two `POST /notifications`
arrays of 500, the API's maximum), delivered with `delivery_batch_size=25` (rows that share a
credential go to monday as one document of aliased `create_notification` fields) and with
`delivery_batch_size=1` (batching off): how many HTTP requests monday received, and the wall
time from the first POST until every row is `sent`. Same machine, same run.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
from sqlalchemy import func, select

from bench import charts
from bench.common import (
    FakeServer,
    Options,
    app_settings,
    database,
    fake_monday,
    install_account,
    ratio,
    recipient_ids,
    say,
    served,
    session_token,
    write_result,
)
from server.storage.db import create_engine
from server.storage.tables import notifications

NAME = "fanout"
PER_POST = 500
TERMINAL = ("sent", "failed", "unknown")


def sizes(opts: Options) -> tuple[int, float]:
    """(recipients, time cap in seconds per run)."""
    return (100, 10.0) if opts.quick else (1000, 40.0)


async def delivery_counts(engine: Any) -> dict[str, int]:
    async with engine.connect() as conn:
        stmt = select(notifications.c.delivery_status, func.count()).group_by(
            notifications.c.delivery_status
        )
        return {status: int(n) for status, n in (await conn.execute(stmt)).all()}


async def wait_until_terminal(
    engine: Any, count: int, *, started: float, cap: float, every: float
) -> dict[str, int]:
    """Poll every `every` s until `count` rows are terminal, or until `cap` s after `started`
    (a `time.perf_counter()` value); the last counts."""
    counts = await delivery_counts(engine)
    while sum(counts.get(s, 0) for s in TERMINAL) < count:
        if time.perf_counter() - started > cap:
            break
        await asyncio.sleep(every)
        counts = await delivery_counts(engine)
    return counts


async def one_run(fake: FakeServer, opts: Options, batch_size: int) -> dict[str, Any]:
    recipients, cap = sizes(opts)
    ids = recipient_ids(recipients)
    async with database("sqlite", opts, f"fanout-{batch_size}") as url:
        await install_account(url)
        settings = app_settings(url, fake.api_url, delivery_batch_size=batch_size)
        async with served("app", settings, f"fanout-{batch_size}") as base:
            engine = create_engine(url)
            headers = {"Authorization": session_token()}
            before_requests = fake.v2_requests()
            before_delivered = len(fake.fake.notifications)
            timeout = aiohttp.ClientTimeout(total=cap + 10)
            started = time.perf_counter()
            async with aiohttp.ClientSession(timeout=timeout) as http:

                async def post(chunk: list[str]) -> int:
                    body = [
                        {
                            "recipient": r,
                            "message": f"Release 4.2 is out ({r})",
                            "collection": "Project",
                            "item": "5550001",
                        }
                        for r in chunk
                    ]
                    async with http.post(
                        base + "/notifications", json=body, headers=headers
                    ) as resp:
                        await resp.read()
                        return resp.status

                statuses = await asyncio.gather(
                    *(post(ids[i : i + PER_POST]) for i in range(0, len(ids), PER_POST))
                )
            accepted = time.perf_counter() - started
            try:
                counts = await wait_until_terminal(
                    engine, recipients, started=started, cap=cap, every=0.1
                )
                wall = time.perf_counter() - started
            finally:
                await engine.dispose()
    upstream = fake.v2_requests() - before_requests
    delivered = len(fake.fake.notifications) - before_delivered
    result = {
        "batch_size": batch_size,
        "post_statuses": statuses,
        "upstream_requests": upstream,
        "delivered_by_monday": delivered,
        "delivery_status": counts,
        "accepted_s": round(accepted, 3),
        "wall_s": round(wall, 3),
        "notifications_per_s": round(delivered / wall, 1) if wall > 0 else None,
        "complete": counts.get("sent", 0) == recipients,
    }
    say(
        f"  batch {batch_size:>3}: {upstream:>5} requests to monday, {delivered} delivered, "
        f"all sent after {wall:.2f} s ({result['notifications_per_s']} notifications/s); "
        f"statuses {counts}"
    )
    return result


async def run(opts: Options) -> dict[str, Any]:
    recipients, cap = sizes(opts)
    say(
        f"fanout: {recipients:,} recipients in arrays of {PER_POST}; "
        f"batch 25 vs 1 (cap {cap:g} s each)"
    )
    async with fake_monday(extra_users=recipients) as fake:
        batched = await one_run(fake, opts, 25)
        unbatched = await one_run(fake, opts, 1)
    results = {
        "recipients": recipients,
        "runs": [batched, unbatched],
        "ratios": {
            "requests_unbatched_over_batched": ratio(
                unbatched["upstream_requests"], batched["upstream_requests"]
            ),
            "wall_unbatched_over_batched": ratio(unbatched["wall_s"], batched["wall_s"]),
        },
    }
    r = results["ratios"]
    say(
        f"  batching saves x{r['requests_unbatched_over_batched']} requests to monday and is "
        f"x{r['wall_unbatched_over_batched']} faster end to end"
    )
    for run_result in (batched, unbatched):
        if not run_result["complete"]:
            say(f"  ! batch {run_result['batch_size']}: not every row was sent within the cap")
    params = {
        "recipients": recipients,
        "per_post": PER_POST,
        "batch_sizes": [25, 1],
        "time_cap_s": cap,
    }
    write_result(NAME, opts, params, results)
    if opts.charts:
        charts.fanout_chart(opts, results)
    return results
