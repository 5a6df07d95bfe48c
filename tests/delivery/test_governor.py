"""The governor on its own: concurrency caps, budgets from monday's headers, backoff."""

from __future__ import annotations

import asyncio
import random

from server.delivery.governor import Deferral, Governor, Permit, backoff_seconds
from server.monday.outcome import SendOutcome
from server.monday.ratelimit import parse_rate_limit


async def test_concurrency_is_capped_per_credential_and_account() -> None:
    governor = Governor(concurrency=2)
    first = await governor.acquire("1", "1:app:a")
    second = await governor.acquire("1", "1:app:b")
    assert isinstance(first, Permit) and isinstance(second, Permit)
    third = asyncio.create_task(governor.acquire("1", "1:app:c"))
    other_account = await asyncio.wait_for(governor.acquire("2", "2:app:a"), 1)
    assert isinstance(other_account, Permit)
    await asyncio.sleep(0.05)
    assert not third.done()  # the account has two calls in flight
    governor.report(first)
    assert isinstance(await asyncio.wait_for(third, 1), Permit)


async def test_an_exhausted_minute_budget_defers_until_the_announced_reset() -> None:
    now = [1000.0]
    governor = Governor(clock=lambda: now[0], max_wait_seconds=5)
    permit = await governor.acquire("1", "c")
    assert isinstance(permit, Permit)
    headers = parse_rate_limit('"minuteRate";r=1;t=30', '"minuteRate";q=100;w=60')
    governor.report(permit, [SendOutcome(status="sent", monday_id="1")], headers)
    last = await governor.acquire("1", "c")  # one call is left in this window
    assert isinstance(last, Permit)
    governor.report(last)
    held = await governor.acquire("1", "c")
    assert isinstance(held, Deferral)
    assert held.code == "MINUTE_BUDGET"
    now[0] += 31  # the window reset
    assert isinstance(await governor.acquire("1", "c"), Permit)


async def test_a_short_pause_is_waited_a_long_one_deferred() -> None:
    governor = Governor(max_wait_seconds=1)
    permit = await governor.acquire("1", "c")
    assert isinstance(permit, Permit)
    refused = SendOutcome(status="retry", code="RATE_LIMIT_EXCEEDED", retry_after_seconds=0.2)
    governor.report(permit, [refused])
    loop = asyncio.get_running_loop()
    started = loop.time()
    waited = await governor.acquire("1", "c")
    assert isinstance(waited, Permit)
    assert loop.time() - started >= 0.15
    governor.report(waited, [SendOutcome(status="retry", code="X", retry_after_seconds=60)])
    deferred = await governor.acquire("1", "c")
    assert isinstance(deferred, Deferral) and deferred.code == "X"
    # A refused connection is not monday limiting the account: no pause.
    fresh = await governor.acquire("2", "d")
    assert isinstance(fresh, Permit)
    governor.report(fresh, [SendOutcome(status="retry", code="MONDAY_UNREACHABLE")])
    assert governor.paused("2") == 0


def test_backoff_grows_never_undercuts_monday_and_is_jittered() -> None:
    rng = random.Random(7)
    assert 10 <= backoff_seconds(1, 10, rng=rng) <= 12.5
    assert 16 <= backoff_seconds(5, 0.2, rng=rng) <= 20
    assert backoff_seconds(40, None, rng=rng) <= 15 * 60 * 1.25
    spread = {round(backoff_seconds(1, 30, rng=rng), 3) for _ in range(20)}
    assert len(spread) > 10
